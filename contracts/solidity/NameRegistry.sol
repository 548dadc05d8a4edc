// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title NameRegistry: who controls a Proxima name, with which Ed25519 zone key, until when.
/// @notice First come, first served registration for a configurable term and fee per term.
/// Every change emits an event carrying the full entry after the change and a change sequence
/// number, so followers can replay the registry in order from any point.
contract NameRegistry {
    struct Entry {
        address owner;
        uint64 expiry;
        bytes32 zoneKey;
    }

    /// Length of one registration period, in seconds.
    uint64 public immutable term;
    /// Most periods one call may buy.
    uint32 public constant MAX_PERIODS = 100;
    /// Fee (wei) per period.
    uint256 public fee;
    /// May change the fee and withdraw fees.
    address public admin;
    /// Number of changes so far; the next event carries this value as `seq`.
    uint64 public changeCount;

    mapping(bytes32 => Entry) private entries;

    error NameTaken(string name);
    error NotRegistered(string name);
    error NameExpired(string name);
    error NotOwner(string name, address caller);
    error InvalidName(string name);
    error InvalidPeriods(uint32 periods);
    error InvalidZoneKey();
    error InvalidOwner();
    error InsufficientFee(uint256 required, uint256 paid);
    error NotAdmin(address caller);
    error WithdrawFailed();

    event Registered(uint64 indexed seq, string name, address owner, bytes32 zoneKey, uint64 expiry);
    event Renewed(uint64 indexed seq, string name, address owner, bytes32 zoneKey, uint64 expiry);
    event Transferred(uint64 indexed seq, string name, address owner, bytes32 zoneKey, uint64 expiry);
    event ZoneKeySet(uint64 indexed seq, string name, address owner, bytes32 zoneKey, uint64 expiry);
    event FeeChanged(uint256 fee);

    constructor(uint64 term_, uint256 fee_) {
        term = term_;
        fee = fee_;
        admin = msg.sender;
    }

    /// Registers `name` for `periods` terms. Refused while someone's registration is live.
    function register(string calldata name, bytes32 zoneKey, uint32 periods) external payable {
        _checkName(name);
        _checkPeriods(periods);
        if (zoneKey == bytes32(0)) revert InvalidZoneKey();
        _charge(periods);
        Entry storage e = entries[keccak256(bytes(name))];
        if (e.owner != address(0) && block.timestamp < e.expiry) revert NameTaken(name);
        e.owner = msg.sender;
        e.zoneKey = zoneKey;
        e.expiry = uint64(block.timestamp) + term * periods;
        emit Registered(changeCount++, name, e.owner, e.zoneKey, e.expiry);
    }

    /// Extends a live registration by `periods` terms (owner only).
    function renew(string calldata name, uint32 periods) external payable {
        _checkPeriods(periods);
        Entry storage e = _owned(name);
        _charge(periods);
        uint64 expiry = e.expiry + term * periods;
        if (expiry > uint64(block.timestamp) + term * MAX_PERIODS) revert InvalidPeriods(periods);
        e.expiry = expiry;
        emit Renewed(changeCount++, name, e.owner, e.zoneKey, e.expiry);
    }

    /// Gives a live name to `newOwner` (owner only).
    function transfer(string calldata name, address newOwner) external {
        if (newOwner == address(0)) revert InvalidOwner();
        Entry storage e = _owned(name);
        e.owner = newOwner;
        emit Transferred(changeCount++, name, e.owner, e.zoneKey, e.expiry);
    }

    /// Replaces the zone key of a live name (owner only).
    function setZoneKey(string calldata name, bytes32 zoneKey) external {
        if (zoneKey == bytes32(0)) revert InvalidZoneKey();
        Entry storage e = _owned(name);
        e.zoneKey = zoneKey;
        emit ZoneKeySet(changeCount++, name, e.owner, e.zoneKey, e.expiry);
    }

    /// The entry of `name` (owner 0 if never registered; may be expired).
    function entry(string calldata name) external view returns (address owner, bytes32 zoneKey, uint64 expiry) {
        Entry storage e = entries[keccak256(bytes(name))];
        return (e.owner, e.zoneKey, e.expiry);
    }

    function setFee(uint256 fee_) external {
        if (msg.sender != admin) revert NotAdmin(msg.sender);
        fee = fee_;
        emit FeeChanged(fee_);
    }

    function withdraw(address payable to) external {
        if (msg.sender != admin) revert NotAdmin(msg.sender);
        (bool ok,) = to.call{value: address(this).balance}("");
        if (!ok) revert WithdrawFailed();
    }

    function _owned(string calldata name) private view returns (Entry storage e) {
        e = entries[keccak256(bytes(name))];
        if (e.owner == address(0)) revert NotRegistered(name);
        if (block.timestamp >= e.expiry) revert NameExpired(name);
        if (e.owner != msg.sender) revert NotOwner(name, msg.sender);
    }

    function _checkPeriods(uint32 periods) private pure {
        if (periods == 0 || periods > MAX_PERIODS) revert InvalidPeriods(periods);
    }

    function _charge(uint32 periods) private view {
        uint256 required = fee * periods;
        if (msg.value < required) revert InsufficientFee(required, msg.value);
    }

    /// Names are validated fully off-chain; on-chain we refuse what can never be valid:
    /// empty, longer than 253 bytes, or bytes outside lowercase LDH and '.'.
    function _checkName(string calldata name) private pure {
        bytes calldata b = bytes(name);
        if (b.length == 0 || b.length > 253) revert InvalidName(name);
        for (uint256 i = 0; i < b.length; i++) {
            bytes1 c = b[i];
            bool ok = (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c == 0x2d || c == 0x2e;
            if (!ok) revert InvalidName(name);
        }
    }
}
