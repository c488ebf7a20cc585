// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Address} from "@openzeppelin/contracts/utils/Address.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

/// @title TributaryEscrow
/// @notice Escrowed federated-learning jobs with per-round commitments, Merkle payouts, disputes
/// and a sweep of unclaimed allocations.
///
/// Lifecycle of a job:
///   1. Open: the buyer creates the job with its terms (coordinator, arbiter, deadline, challenge
///      window, arbitration window, claim period) and deposits the budget (native ETH when `token`
///      is address(0), an ERC-20 otherwise); it may top it up until the deadline. The coordinator
///      commits each training round (1, 2, 3, ...: strictly increasing by one) with the model hash,
///      the validation metric and the hash of its signed round transcript.
///   2. Settled: before the deadline the coordinator posts a payout Merkle root and its total
///      (total <= budget). Leaves are OpenZeppelin StandardMerkleTree leaves of
///      [address account, uint256 amount]. Claims open `challengeWindow` seconds later and close
///      `claimPeriod` seconds after opening; the unspent budget (budget - total, rounding dust
///      included) is refundable to the buyer at once. The coordinator may instead `release` an
///      open job, returning the whole budget (what it does when the buyer cancels before any round).
///   3. Disputed: during the challenge window the buyer or the arbiter may dispute the root once.
///      Claims freeze until the arbiter posts a corrected root and total (`resolveDispute`, claims
///      open at once). If the arbiter has not answered within `arbitrationWindow`, anyone may call
///      `expireDispute`: the posted root stands but every claim pays only
///      (1 - TIMEOUT_HAIRCUT_BPS / 10000) of its leaf, and the haircut goes back to the buyer with
///      the refund. Neither side wins by default: a lying coordinator keeps only half of what it
///      took, and a buyer who disputes an honest root only to get its money back gets only half of
///      it, so both want an arbiter that answers.
///   4. Swept: once the claim period is over, the buyer sweeps whatever is still held (unclaimed
///      allocations, and any unrefunded remainder) and the job closes.
///   5. Recovered: if the coordinator has not settled by the deadline, the buyer takes the whole
///      budget back (or the coordinator released the job earlier).
///
/// Accounting invariant per job: budget (everything deposited) == claimed + refunded + swept + held,
/// and the contract's balance of each asset equals the sum of `held` over jobs in that asset.
/// No function loops over contributors: each one claims its own leaf.
contract TributaryEscrow is ReentrancyGuard {
    using SafeERC20 for IERC20;

    // Appended in order: the numbering of the first four is what earlier clients read.
    enum Status {
        None,
        Open,
        Settled,
        Recovered,
        Disputed,
        Swept
    }

    /// What the buyer fixes at creation.
    struct Terms {
        bytes32 specHash;
        address token;
        uint256 amount;
        address coordinator;
        address arbiter;
        uint64 deadline;
        uint64 challengeWindow;
        uint64 arbitrationWindow;
        uint64 claimPeriod;
    }

    struct Job {
        address buyer;
        uint64 deadline;
        uint32 lastRound;
        address coordinator;
        uint64 challengeWindow;
        Status status;
        bool disputed;
        bool haircut;
        address token;
        uint64 claimsOpenAt;
        address arbiter;
        uint64 arbitrationWindow;
        uint64 claimPeriod;
        uint64 disputedAt;
        bytes32 specHash;
        bytes32 payoutRoot;
        uint256 budget;
        uint256 payoutTotal;
        uint256 claimed;
        uint256 refunded;
        uint256 swept;
    }

    struct RoundCommitment {
        bytes32 modelHash;
        uint256 metric;
        bytes32 transcriptHash;
    }

    /// @notice Share of each allocation withheld when a dispute expires unanswered (basis points).
    uint16 public constant TIMEOUT_HAIRCUT_BPS = 5000;
    /// @notice Shortest arbitration window a job may set: a buyer must not be able to pick one the
    /// arbiter cannot meet, which would make the haircut its default win.
    uint64 public constant MIN_ARBITRATION_WINDOW = 1 days;
    /// @notice Shortest claim period a job may set: contributors get at least this long to claim
    /// before the buyer may sweep.
    uint64 public constant MIN_CLAIM_PERIOD = 7 days;
    /// @notice Longest window or period a job may set (so no timestamp sum can overflow, and no
    /// job can freeze its funds for longer).
    uint64 public constant MAX_WINDOW = 3650 days;

    /// @notice Id of the next job; ids start at 1.
    uint256 public nextJobId = 1;

    mapping(uint256 jobId => Job) private _jobs;
    mapping(uint256 jobId => mapping(uint256 round => RoundCommitment)) private _rounds;
    mapping(uint256 jobId => mapping(address account => bool)) private _hasClaimed;

    event JobCreated(
        uint256 indexed jobId,
        address indexed buyer,
        address indexed coordinator,
        address token,
        bytes32 specHash,
        uint256 budget,
        uint64 deadline,
        uint64 challengeWindow
    );
    /// Emitted with JobCreated: the dispute and claim terms.
    event JobTermsSet(uint256 indexed jobId, address indexed arbiter, uint64 arbitrationWindow, uint64 claimPeriod);
    event ToppedUp(uint256 indexed jobId, uint256 amount, uint256 budget);
    event RoundCommitted(
        uint256 indexed jobId, uint256 indexed round, bytes32 modelHash, uint256 metric, bytes32 transcriptHash
    );
    event Settled(uint256 indexed jobId, bytes32 payoutRoot, uint256 payoutTotal, uint64 claimsOpenAt);
    event Claimed(uint256 indexed jobId, address indexed account, uint256 amount);
    event Refunded(uint256 indexed jobId, address indexed buyer, uint256 amount);
    event Recovered(uint256 indexed jobId, address indexed buyer, uint256 amount);
    event Released(uint256 indexed jobId, address indexed buyer, uint256 amount);
    event DisputeRaised(uint256 indexed jobId, address indexed by, uint64 arbitrationEndsAt);
    event DisputeResolved(uint256 indexed jobId, bytes32 payoutRoot, uint256 payoutTotal, uint64 claimsOpenAt);
    event DisputeExpired(uint256 indexed jobId, uint256 payoutTotal, uint64 claimsOpenAt);
    event Swept(uint256 indexed jobId, address indexed buyer, uint256 amount);

    error ZeroAddress();
    error ZeroAmount();
    error InvalidDeadline(uint64 deadline, uint256 timestamp);
    error InvalidArbiter(address arbiter);
    error ArbitrationWindowTooShort(uint64 given, uint64 minimum);
    error ClaimPeriodTooShort(uint64 given, uint64 minimum);
    error WindowTooLong(uint64 given, uint64 maximum);
    error ValueMismatch(uint256 expected, uint256 received);
    error UnknownJob(uint256 jobId);
    error NotBuyer(uint256 jobId, address caller);
    error NotCoordinator(uint256 jobId, address caller);
    error NotArbiter(uint256 jobId, address caller);
    error NotDisputant(uint256 jobId, address caller);
    error JobNotOpen(uint256 jobId, Status status);
    error AlreadySettled(uint256 jobId);
    error NotSettled(uint256 jobId, Status status);
    error DeadlinePassed(uint256 jobId, uint64 deadline);
    error DeadlineNotReached(uint256 jobId, uint64 deadline);
    error RoundOutOfOrder(uint256 jobId, uint256 expected, uint256 received);
    error RoundConflict(uint256 jobId, uint256 round);
    error NoRoundsCommitted(uint256 jobId);
    error PayoutExceedsBudget(uint256 jobId, uint256 total, uint256 budget);
    error InvalidPayoutRoot(uint256 jobId);
    error ClaimsNotOpen(uint256 jobId, uint64 claimsOpenAt);
    error ClaimPeriodOver(uint256 jobId, uint64 closedAt);
    error ClaimPeriodNotOver(uint256 jobId, uint64 endsAt);
    error AlreadyClaimed(uint256 jobId, address account);
    error InvalidProof(uint256 jobId, address account, uint256 amount);
    error ClaimExceedsTotal(uint256 jobId, uint256 amount, uint256 remaining);
    error NothingToRefund(uint256 jobId);
    error NothingToSweep(uint256 jobId);
    error AlreadyDisputed(uint256 jobId);
    error ChallengeWindowOver(uint256 jobId, uint64 claimsOpenAt);
    error NotDisputed(uint256 jobId, Status status);
    error ArbitrationPending(uint256 jobId, uint64 endsAt);
    error ArbitrationOver(uint256 jobId, uint64 endedAt);

    // ----------------------------------------------------------------------------------------
    // Buyer

    /// @notice Creates a job with `terms` and deposits its budget. For native ETH
    /// (`terms.token` == address(0)) `msg.value` must equal `terms.amount`; for an ERC-20 the buyer
    /// must have approved it and the budget is what actually arrived (fee-on-transfer tokens are
    /// credited net). The arbiter must be neither the buyer nor the coordinator.
    function createJob(Terms calldata terms) external payable nonReentrant returns (uint256 jobId) {
        if (terms.coordinator == address(0)) revert ZeroAddress();
        if (terms.amount == 0) revert ZeroAmount();
        if (terms.deadline <= block.timestamp) revert InvalidDeadline(terms.deadline, block.timestamp);
        if (terms.arbiter == address(0) || terms.arbiter == msg.sender || terms.arbiter == terms.coordinator) {
            revert InvalidArbiter(terms.arbiter);
        }
        if (terms.arbitrationWindow < MIN_ARBITRATION_WINDOW) {
            revert ArbitrationWindowTooShort(terms.arbitrationWindow, MIN_ARBITRATION_WINDOW);
        }
        if (terms.claimPeriod < MIN_CLAIM_PERIOD) revert ClaimPeriodTooShort(terms.claimPeriod, MIN_CLAIM_PERIOD);
        uint64 longest = terms.challengeWindow;
        if (terms.arbitrationWindow > longest) longest = terms.arbitrationWindow;
        if (terms.claimPeriod > longest) longest = terms.claimPeriod;
        if (longest > MAX_WINDOW) revert WindowTooLong(longest, MAX_WINDOW);

        jobId = nextJobId++;
        Job storage job = _jobs[jobId];
        job.buyer = msg.sender;
        job.coordinator = terms.coordinator;
        job.arbiter = terms.arbiter;
        job.token = terms.token;
        job.deadline = terms.deadline;
        job.challengeWindow = terms.challengeWindow;
        job.arbitrationWindow = terms.arbitrationWindow;
        job.claimPeriod = terms.claimPeriod;
        job.specHash = terms.specHash;
        job.status = Status.Open;

        uint256 received = _pull(terms.token, terms.amount);
        job.budget = received;
        emit JobCreated(
            jobId,
            msg.sender,
            terms.coordinator,
            terms.token,
            terms.specHash,
            received,
            terms.deadline,
            terms.challengeWindow
        );
        emit JobTermsSet(jobId, terms.arbiter, terms.arbitrationWindow, terms.claimPeriod);
    }

    /// @notice Adds `amount` to an open job's budget before its deadline. Buyer only.
    function topUp(uint256 jobId, uint256 amount) external payable nonReentrant {
        Job storage job = _job(jobId);
        if (msg.sender != job.buyer) revert NotBuyer(jobId, msg.sender);
        if (job.status != Status.Open) revert JobNotOpen(jobId, job.status);
        if (block.timestamp > job.deadline) revert DeadlinePassed(jobId, job.deadline);
        if (amount == 0) revert ZeroAmount();

        uint256 received = _pull(job.token, amount);
        job.budget += received;
        emit ToppedUp(jobId, received, job.budget);
    }

    /// @notice After settlement, sends the unspent budget (budget - payout total, rounding dust
    /// and any dispute haircut included) to the buyer. Buyer only; not while a dispute is open.
    function refund(uint256 jobId) external nonReentrant {
        Job storage job = _job(jobId);
        if (msg.sender != job.buyer) revert NotBuyer(jobId, msg.sender);
        if (job.status != Status.Settled) revert NotSettled(jobId, job.status);
        uint256 amount = job.budget - job.payoutTotal - job.refunded;
        if (amount == 0) revert NothingToRefund(jobId);

        job.refunded += amount;
        emit Refunded(jobId, job.buyer, amount);
        _push(job.token, job.buyer, amount);
    }

    /// @notice After the deadline of a job that was never settled, returns the whole budget to
    /// the buyer and closes the job. Buyer only.
    function recoverAfterDeadline(uint256 jobId) external nonReentrant {
        Job storage job = _job(jobId);
        if (msg.sender != job.buyer) revert NotBuyer(jobId, msg.sender);
        if (job.status == Status.Settled || job.status == Status.Disputed) revert AlreadySettled(jobId);
        if (job.status != Status.Open) revert JobNotOpen(jobId, job.status);
        if (block.timestamp <= job.deadline) revert DeadlineNotReached(jobId, job.deadline);

        uint256 amount = _held(job);
        job.status = Status.Recovered;
        job.refunded += amount;
        emit Recovered(jobId, job.buyer, amount);
        _push(job.token, job.buyer, amount);
    }

    /// @notice Once the claim period is over, sends everything the job still holds (unclaimed
    /// allocations, any unrefunded remainder) to the buyer and closes the job. Buyer only.
    function sweep(uint256 jobId) external nonReentrant {
        Job storage job = _job(jobId);
        if (msg.sender != job.buyer) revert NotBuyer(jobId, msg.sender);
        if (job.status != Status.Settled) revert NotSettled(jobId, job.status);
        uint64 endsAt = job.claimsOpenAt + job.claimPeriod;
        if (block.timestamp < endsAt) revert ClaimPeriodNotOver(jobId, endsAt);
        uint256 amount = _held(job);
        if (amount == 0) revert NothingToSweep(jobId);

        job.status = Status.Swept;
        job.swept += amount;
        emit Swept(jobId, job.buyer, amount);
        _push(job.token, job.buyer, amount);
    }

    // ----------------------------------------------------------------------------------------
    // Disputes (buyer or arbiter)

    /// @notice Disputes the posted root during the challenge window: claims freeze until the
    /// arbiter resolves or the arbitration window expires. Buyer or arbiter; once per job.
    function dispute(uint256 jobId) external {
        Job storage job = _job(jobId);
        if (msg.sender != job.buyer && msg.sender != job.arbiter) revert NotDisputant(jobId, msg.sender);
        if (job.disputed) revert AlreadyDisputed(jobId);
        if (job.status != Status.Settled) revert NotSettled(jobId, job.status);
        if (block.timestamp >= job.claimsOpenAt) revert ChallengeWindowOver(jobId, job.claimsOpenAt);

        uint64 now64 = uint64(block.timestamp);
        job.status = Status.Disputed;
        job.disputed = true;
        job.disputedAt = now64;
        emit DisputeRaised(jobId, msg.sender, now64 + job.arbitrationWindow);
    }

    /// @notice The arbiter's answer to a dispute: the corrected payout root and total (the posted
    /// ones to confirm them). Claims open at once. Arbiter only, within the arbitration window;
    /// the total cannot exceed what the escrow still holds for the job.
    function resolveDispute(uint256 jobId, bytes32 payoutRoot, uint256 payoutTotal) external {
        Job storage job = _job(jobId);
        if (msg.sender != job.arbiter) revert NotArbiter(jobId, msg.sender);
        if (job.status != Status.Disputed) revert NotDisputed(jobId, job.status);
        uint64 endsAt = job.disputedAt + job.arbitrationWindow;
        if (block.timestamp >= endsAt) revert ArbitrationOver(jobId, endsAt);
        uint256 available = job.budget - job.refunded;
        if (payoutTotal > available) revert PayoutExceedsBudget(jobId, payoutTotal, available);
        if (payoutTotal != 0 && payoutRoot == bytes32(0)) revert InvalidPayoutRoot(jobId);

        uint64 now64 = uint64(block.timestamp);
        job.status = Status.Settled;
        job.payoutRoot = payoutRoot;
        job.payoutTotal = payoutTotal;
        job.claimsOpenAt = now64;
        emit DisputeResolved(jobId, payoutRoot, payoutTotal, now64);
    }

    /// @notice Ends a dispute the arbiter left unanswered past the arbitration window: the posted
    /// root stands, but each claim pays (10000 - TIMEOUT_HAIRCUT_BPS) / 10000 of its leaf and the
    /// total shrinks alike (the difference is refundable to the buyer). Claims open at once.
    /// Anyone may call it.
    function expireDispute(uint256 jobId) external {
        Job storage job = _job(jobId);
        if (job.status != Status.Disputed) revert NotDisputed(jobId, job.status);
        uint64 endsAt = job.disputedAt + job.arbitrationWindow;
        if (block.timestamp < endsAt) revert ArbitrationPending(jobId, endsAt);

        uint64 now64 = uint64(block.timestamp);
        uint256 total = _afterHaircut(job.payoutTotal);
        job.status = Status.Settled;
        job.haircut = true;
        job.payoutTotal = total;
        job.claimsOpenAt = now64;
        emit DisputeExpired(jobId, total, now64);
    }

    // ----------------------------------------------------------------------------------------
    // Coordinator

    /// @notice Records round `round` of an open job: the model hash, the validation metric and the
    /// hash of the coordinator's signed round transcript. Rounds start at 1 and increase by one.
    /// Re-committing an already recorded round with identical data is a no-op that returns false
    /// and emits nothing (so a retried transaction is harmless); different data for a recorded
    /// round reverts with RoundConflict. Coordinator only, until the deadline.
    /// @return recorded true when the round was newly recorded.
    function commitRound(uint256 jobId, uint256 round, bytes32 modelHash, uint256 metric, bytes32 transcriptHash)
        external
        returns (bool recorded)
    {
        Job storage job = _job(jobId);
        if (msg.sender != job.coordinator) revert NotCoordinator(jobId, msg.sender);
        if (job.status != Status.Open) revert JobNotOpen(jobId, job.status);
        if (block.timestamp > job.deadline) revert DeadlinePassed(jobId, job.deadline);

        uint256 last = job.lastRound;
        if (round != 0 && round <= last) {
            RoundCommitment storage existing = _rounds[jobId][round];
            if (
                existing.modelHash != modelHash || existing.metric != metric
                    || existing.transcriptHash != transcriptHash
            ) revert RoundConflict(jobId, round);
            return false;
        }
        // lastRound is a uint32 (packed with the buyer): 4 billion rounds is the ceiling.
        if (round != last + 1 || round > type(uint32).max) revert RoundOutOfOrder(jobId, last + 1, round);

        job.lastRound = uint32(round);
        _rounds[jobId][round] = RoundCommitment(modelHash, metric, transcriptHash);
        emit RoundCommitted(jobId, round, modelHash, metric, transcriptHash);
        return true;
    }

    /// @notice Posts the payout Merkle root and total of an open job that has at least one round.
    /// Claims open `challengeWindow` seconds from now. Coordinator only, until the deadline.
    function settle(uint256 jobId, bytes32 payoutRoot, uint256 payoutTotal) external {
        Job storage job = _job(jobId);
        if (msg.sender != job.coordinator) revert NotCoordinator(jobId, msg.sender);
        if (job.status == Status.Settled || job.status == Status.Disputed) revert AlreadySettled(jobId);
        if (job.status != Status.Open) revert JobNotOpen(jobId, job.status);
        if (block.timestamp > job.deadline) revert DeadlinePassed(jobId, job.deadline);
        if (job.lastRound == 0) revert NoRoundsCommitted(jobId);
        if (payoutTotal > job.budget) revert PayoutExceedsBudget(jobId, payoutTotal, job.budget);
        if (payoutTotal != 0 && payoutRoot == bytes32(0)) revert InvalidPayoutRoot(jobId);

        uint64 opensAt = uint64(block.timestamp) + job.challengeWindow;
        job.status = Status.Settled;
        job.payoutRoot = payoutRoot;
        job.payoutTotal = payoutTotal;
        job.claimsOpenAt = opensAt;
        emit Settled(jobId, payoutRoot, payoutTotal, opensAt);
    }

    /// @notice Gives up an open job: the whole budget goes back to the buyer and the job closes
    /// (what the coordinator does when the buyer cancels before any round). Coordinator only.
    function release(uint256 jobId) external nonReentrant {
        Job storage job = _job(jobId);
        if (msg.sender != job.coordinator) revert NotCoordinator(jobId, msg.sender);
        if (job.status == Status.Settled || job.status == Status.Disputed) revert AlreadySettled(jobId);
        if (job.status != Status.Open) revert JobNotOpen(jobId, job.status);

        uint256 amount = _held(job);
        job.status = Status.Recovered;
        job.refunded += amount;
        emit Released(jobId, job.buyer, amount);
        _push(job.token, job.buyer, amount);
    }

    // ----------------------------------------------------------------------------------------
    // Contributors

    /// @notice Pays `account` its allocation `amount` from a settled job once the challenge
    /// window is over and before the claim period ends (after an unanswered dispute: the
    /// allocation less the haircut). Anyone may submit the claim; the funds always go to
    /// `account`. `proof` is the StandardMerkleTree proof of the leaf [account, amount].
    function claim(uint256 jobId, address account, uint256 amount, bytes32[] calldata proof)
        external
        nonReentrant
    {
        Job storage job = _job(jobId);
        if (job.status != Status.Settled) revert NotSettled(jobId, job.status);
        if (block.timestamp < job.claimsOpenAt) revert ClaimsNotOpen(jobId, job.claimsOpenAt);
        uint64 closesAt = job.claimsOpenAt + job.claimPeriod;
        if (block.timestamp >= closesAt) revert ClaimPeriodOver(jobId, closesAt);
        if (_hasClaimed[jobId][account]) revert AlreadyClaimed(jobId, account);
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(account, amount))));
        if (!MerkleProof.verifyCalldata(proof, job.payoutRoot, leaf)) revert InvalidProof(jobId, account, amount);
        uint256 paid = job.haircut ? _afterHaircut(amount) : amount;
        // A root whose leaves sum above the posted total must not eat into the buyer's refund.
        uint256 remaining = job.payoutTotal - job.claimed;
        if (paid > remaining) revert ClaimExceedsTotal(jobId, paid, remaining);

        _hasClaimed[jobId][account] = true;
        job.claimed += paid;
        emit Claimed(jobId, account, paid);
        _push(job.token, account, paid);
    }

    // ----------------------------------------------------------------------------------------
    // Views

    /// @notice The full state of a job (reverts for an unknown id).
    function getJob(uint256 jobId) external view returns (Job memory) {
        return _job(jobId);
    }

    /// @notice The commitment of `round` (zeroes when not recorded).
    function getRound(uint256 jobId, uint256 round)
        external
        view
        returns (bytes32 modelHash, uint256 metric, bytes32 transcriptHash)
    {
        RoundCommitment storage r = _rounds[jobId][round];
        return (r.modelHash, r.metric, r.transcriptHash);
    }

    /// @notice Whether `account` has claimed from `jobId`.
    function hasClaimed(uint256 jobId, address account) external view returns (bool) {
        return _hasClaimed[jobId][account];
    }

    /// @notice Funds the escrow still holds for `jobId`: budget - claimed - refunded - swept.
    function held(uint256 jobId) external view returns (uint256) {
        return _held(_job(jobId));
    }

    // ----------------------------------------------------------------------------------------
    // Internals

    function _job(uint256 jobId) private view returns (Job storage job) {
        job = _jobs[jobId];
        if (job.status == Status.None) revert UnknownJob(jobId);
    }

    function _held(Job storage job) private view returns (uint256) {
        return job.budget - job.claimed - job.refunded - job.swept;
    }

    /// Floors: the haircut of a sum is never less than the sum of the leaves' haircuts.
    function _afterHaircut(uint256 amount) private pure returns (uint256) {
        return (amount * (10_000 - TIMEOUT_HAIRCUT_BPS)) / 10_000;
    }

    /// Takes `amount` from msg.sender and returns what arrived.
    function _pull(address token, uint256 amount) private returns (uint256) {
        if (token == address(0)) {
            if (msg.value != amount) revert ValueMismatch(amount, msg.value);
            return amount;
        }
        if (msg.value != 0) revert ValueMismatch(0, msg.value);
        IERC20 erc20 = IERC20(token);
        uint256 before = erc20.balanceOf(address(this));
        erc20.safeTransferFrom(msg.sender, address(this), amount);
        uint256 received = erc20.balanceOf(address(this)) - before;
        if (received == 0) revert ZeroAmount();
        return received;
    }

    function _push(address token, address to, uint256 amount) private {
        if (amount == 0) return;
        if (token == address(0)) {
            Address.sendValue(payable(to), amount);
        } else {
            IERC20(token).safeTransfer(to, amount);
        }
    }
}
