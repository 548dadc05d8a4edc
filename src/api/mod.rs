//! The admin API routes of the services (the router, its guard, `/health` and `/metrics` are in
//! [`crate::admin`]).

pub mod blobs;
