//! Channel and pattern subscriptions, and message fan-out.
//!
//! Each subscribed connection owns a bounded queue; `PUBLISH` never waits. A subscriber whose
//! queue is full is disconnected (Redis does the same when a pub/sub client passes its output
//! buffer limit), so one slow reader cannot grow memory without bound.

use bytes::Bytes;
use hashbrown::HashMap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::glob::glob_match;

/// Messages a subscriber may have queued before it is disconnected.
pub const QUEUE: usize = 4096;

/// One published message, as delivered to one subscriber.
#[derive(Debug, Clone)]
pub struct PubMsg {
    /// The pattern that matched (for `pmessage`), or `None` (for `message`).
    pub pattern: Option<Bytes>,
    /// The channel.
    pub channel: Bytes,
    /// The payload.
    pub payload: Bytes,
    /// Published with `SPUBLISH` (delivered as `smessage`).
    pub shard: bool,
    /// What it is: a message, or a client-side caching notice.
    pub kind: MsgKind,
}

/// What a queued message is.
#[derive(Debug, Clone, Default)]
pub enum MsgKind {
    /// A published message.
    #[default]
    Message,
    /// Keys to invalidate (`None`: every key, after a flush), as a RESP3 `invalidate` push
    /// or a RESP2 message on `__redis__:invalidate`.
    Invalidate(Option<Vec<crate::value::Bytes>>),
    /// The client tracking invalidations redirect to is gone (`tracking-redir-broken`).
    RedirBroken(u64),
}

/// A subscribed connection's queue.
#[derive(Debug, Clone)]
pub struct Subscriber {
    /// Client id.
    pub id: u64,
    /// Its queue.
    pub tx: mpsc::Sender<PubMsg>,
    /// Cancelled to disconnect it.
    pub kill: CancellationToken,
}

/// All subscriptions of one server.
#[derive(Debug, Default)]
pub struct PubSub {
    channels: HashMap<Box<[u8]>, Vec<Subscriber>>,
    patterns: HashMap<Box<[u8]>, Vec<Subscriber>>,
    shard: HashMap<Box<[u8]>, Vec<Subscriber>>,
}

impl PubSub {
    /// Subscribes; true if it was new for this client.
    pub fn subscribe(&mut self, pattern: bool, name: &[u8], sub: &Subscriber) -> bool {
        let map = if pattern {
            &mut self.patterns
        } else {
            &mut self.channels
        };
        let subs = map.entry(name.into()).or_default();
        if subs.iter().any(|s| s.id == sub.id) {
            return false;
        }
        subs.push(sub.clone());
        true
    }

    /// Unsubscribes; true if the client was subscribed.
    pub fn unsubscribe(&mut self, pattern: bool, name: &[u8], id: u64) -> bool {
        let map = if pattern {
            &mut self.patterns
        } else {
            &mut self.channels
        };
        let Some(subs) = map.get_mut(name) else {
            return false;
        };
        let before = subs.len();
        subs.retain(|s| s.id != id);
        let removed = subs.len() != before;
        if subs.is_empty() {
            map.remove(name);
        }
        removed
    }

    /// Delivers a message; returns the number of receivers.
    pub fn publish(&self, channel: &[u8], payload: &[u8]) -> usize {
        let channel_b = Bytes::copy_from_slice(channel);
        let payload_b = Bytes::copy_from_slice(payload);
        let mut n = 0;
        let deliver = |s: &Subscriber, msg: PubMsg| {
            if s.tx.try_send(msg).is_err() {
                // Full or gone: disconnect rather than buffer without bound.
                s.kill.cancel();
            }
        };
        if let Some(subs) = self.channels.get(channel) {
            for s in subs {
                deliver(
                    s,
                    PubMsg {
                        pattern: None,
                        channel: channel_b.clone(),
                        payload: payload_b.clone(),
                        shard: false,
                        kind: MsgKind::Message,
                    },
                );
                n += 1;
            }
        }
        for (pat, subs) in &self.patterns {
            if glob_match(pat, channel, false) {
                let pat_b = Bytes::copy_from_slice(pat);
                for s in subs {
                    deliver(
                        s,
                        PubMsg {
                            pattern: Some(pat_b.clone()),
                            channel: channel_b.clone(),
                            payload: payload_b.clone(),
                            shard: false,
                            kind: MsgKind::Message,
                        },
                    );
                    n += 1;
                }
            }
        }
        n
    }

    /// Subscribes to a shard channel (`SSUBSCRIBE`); true if it was new for this client.
    pub fn subscribe_shard(&mut self, name: &[u8], sub: &Subscriber) -> bool {
        let subs = self.shard.entry(name.into()).or_default();
        if subs.iter().any(|s| s.id == sub.id) {
            return false;
        }
        subs.push(sub.clone());
        true
    }

    /// Unsubscribes from a shard channel; true if the client was subscribed.
    pub fn unsubscribe_shard(&mut self, name: &[u8], id: u64) -> bool {
        let Some(subs) = self.shard.get_mut(name) else {
            return false;
        };
        let before = subs.len();
        subs.retain(|s| s.id != id);
        let removed = subs.len() != before;
        if subs.is_empty() {
            self.shard.remove(name);
        }
        removed
    }

    /// Delivers a shard message (`SPUBLISH`); returns the number of receivers.
    pub fn publish_shard(&self, channel: &[u8], payload: &[u8]) -> usize {
        let Some(subs) = self.shard.get(channel) else {
            return 0;
        };
        let msg = PubMsg {
            pattern: None,
            channel: Bytes::copy_from_slice(channel),
            payload: Bytes::copy_from_slice(payload),
            shard: true,
            kind: MsgKind::Message,
        };
        for s in subs {
            if s.tx.try_send(msg.clone()).is_err() {
                s.kill.cancel();
            }
        }
        subs.len()
    }

    /// Active shard channels (`PUBSUB SHARDCHANNELS`).
    pub fn shard_channels(&self) -> usize {
        self.shard.len()
    }

    /// Active shard channels matching an optional pattern (`PUBSUB SHARDCHANNELS`).
    pub fn shard_channel_names(&self, pattern: Option<&[u8]>) -> Vec<Box<[u8]>> {
        self.shard
            .keys()
            .filter(|c| pattern.is_none_or(|p| glob_match(p, c, false)))
            .cloned()
            .collect()
    }

    /// Subscribers of a shard channel (`PUBSUB SHARDNUMSUB`).
    pub fn shard_numsub(&self, channel: &[u8]) -> usize {
        self.shard.get(channel).map_or(0, Vec::len)
    }

    /// Active channels matching an optional pattern (`PUBSUB CHANNELS`).
    pub fn channels(&self, pattern: Option<&[u8]>) -> Vec<Box<[u8]>> {
        self.channels
            .keys()
            .filter(|c| pattern.is_none_or(|p| glob_match(p, c, false)))
            .cloned()
            .collect()
    }

    /// Subscribers of a channel (`PUBSUB NUMSUB`).
    pub fn numsub(&self, channel: &[u8]) -> usize {
        self.channels.get(channel).map_or(0, Vec::len)
    }

    /// Distinct patterns (`PUBSUB NUMPAT`).
    pub fn numpat(&self) -> usize {
        self.patterns.len()
    }
}
