// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Address} from "@openzeppelin/contracts/utils/Address.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

/// @title TributaryEscrow
/// @notice Escrowed federated-learning jobs with per-round commitments and Merkle payouts.
///
/// Lifecycle of a job:
///   1. Open: the buyer creates the job and deposits the budget (native ETH when `token` is
///      address(0), an ERC-20 otherwise) and may top it up until the deadline. The job's
///      coordinator commits each training round (1, 2, 3, ...: strictly increasing by one) with
///      the model hash and the validation metric.
///   2. Settled: before the deadline the coordinator posts a payout Merkle root and its total
///      (total <= budget). Leaves are OpenZeppelin StandardMerkleTree leaves of
///      [address account, uint256 amount]. Claims open `challengeWindow` seconds later; the
///      unspent budget (budget - total, which includes any rounding dust) is refundable to the
///      buyer at once.
///   3. Recovered: if the coordinator has not settled by the deadline, the buyer takes the
///      whole budget back.
///
/// Accounting invariant per job: budget (everything deposited) == claimed + refunded + held,
/// and the contract's balance of each asset equals the sum of `held` over jobs in that asset.
/// No function loops over contributors: each one claims its own leaf.
contract TributaryEscrow is ReentrancyGuard {
    using SafeERC20 for IERC20;

    enum Status {
        None,
        Open,
        Settled,
        Recovered
    }

    struct Job {
        address buyer;
        uint64 deadline;
        uint32 lastRound;
        address coordinator;
        uint64 challengeWindow;
        Status status;
        address token;
        uint64 claimsOpenAt;
        bytes32 specHash;
        bytes32 payoutRoot;
        uint256 budget;
        uint256 payoutTotal;
        uint256 claimed;
        uint256 refunded;
    }

    struct RoundCommitment {
        bytes32 modelHash;
        uint256 metric;
    }

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
    event ToppedUp(uint256 indexed jobId, uint256 amount, uint256 budget);
    event RoundCommitted(uint256 indexed jobId, uint256 indexed round, bytes32 modelHash, uint256 metric);
    event Settled(uint256 indexed jobId, bytes32 payoutRoot, uint256 payoutTotal, uint64 claimsOpenAt);
    event Claimed(uint256 indexed jobId, address indexed account, uint256 amount);
    event Refunded(uint256 indexed jobId, address indexed buyer, uint256 amount);
    event Recovered(uint256 indexed jobId, address indexed buyer, uint256 amount);

    error ZeroAddress();
    error ZeroAmount();
    error InvalidDeadline(uint64 deadline, uint256 timestamp);
    error ValueMismatch(uint256 expected, uint256 received);
    error UnknownJob(uint256 jobId);
    error NotBuyer(uint256 jobId, address caller);
    error NotCoordinator(uint256 jobId, address caller);
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
    error AlreadyClaimed(uint256 jobId, address account);
    error InvalidProof(uint256 jobId, address account, uint256 amount);
    error ClaimExceedsTotal(uint256 jobId, uint256 amount, uint256 remaining);
    error NothingToRefund(uint256 jobId);

    // ----------------------------------------------------------------------------------------
    // Buyer

    /// @notice Creates a job and deposits its budget. For native ETH (`token` == address(0))
    /// `msg.value` must equal `amount`; for an ERC-20 the buyer must have approved `amount` and
    /// the budget is what actually arrived (fee-on-transfer tokens are credited net).
    function createJob(
        bytes32 specHash,
        address token,
        uint256 amount,
        address coordinator,
        uint64 deadline,
        uint64 challengeWindow
    ) external payable nonReentrant returns (uint256 jobId) {
        if (coordinator == address(0)) revert ZeroAddress();
        if (amount == 0) revert ZeroAmount();
        if (deadline <= block.timestamp) revert InvalidDeadline(deadline, block.timestamp);

        jobId = nextJobId++;
        Job storage job = _jobs[jobId];
        job.buyer = msg.sender;
        job.coordinator = coordinator;
        job.token = token;
        job.deadline = deadline;
        job.challengeWindow = challengeWindow;
        job.specHash = specHash;
        job.status = Status.Open;

        uint256 received = _pull(token, amount);
        job.budget = received;
        emit JobCreated(jobId, msg.sender, coordinator, token, specHash, received, deadline, challengeWindow);
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
    /// included) to the buyer. Buyer only; pays once.
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
        if (job.status == Status.Settled) revert AlreadySettled(jobId);
        if (job.status != Status.Open) revert JobNotOpen(jobId, job.status);
        if (block.timestamp <= job.deadline) revert DeadlineNotReached(jobId, job.deadline);

        uint256 amount = job.budget - job.claimed - job.refunded;
        job.status = Status.Recovered;
        job.refunded += amount;
        emit Recovered(jobId, job.buyer, amount);
        _push(job.token, job.buyer, amount);
    }

    // ----------------------------------------------------------------------------------------
    // Coordinator

    /// @notice Records round `round` of an open job. Rounds start at 1 and increase by one.
    /// Re-committing an already recorded round with identical data is a no-op that returns
    /// false and emits nothing (so a retried transaction is harmless); different data for a
    /// recorded round reverts with RoundConflict. Coordinator only, until the deadline.
    /// @return recorded true when the round was newly recorded.
    function commitRound(uint256 jobId, uint256 round, bytes32 modelHash, uint256 metric)
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
            if (existing.modelHash != modelHash || existing.metric != metric) revert RoundConflict(jobId, round);
            return false;
        }
        // lastRound is a uint32 (packed with the buyer): 4 billion rounds is the ceiling.
        if (round != last + 1 || round > type(uint32).max) revert RoundOutOfOrder(jobId, last + 1, round);

        job.lastRound = uint32(round);
        _rounds[jobId][round] = RoundCommitment(modelHash, metric);
        emit RoundCommitted(jobId, round, modelHash, metric);
        return true;
    }

    /// @notice Posts the payout Merkle root and total of an open job that has at least one round.
    /// Claims open `challengeWindow` seconds from now. Coordinator only, until the deadline.
    function settle(uint256 jobId, bytes32 payoutRoot, uint256 payoutTotal) external {
        Job storage job = _job(jobId);
        if (msg.sender != job.coordinator) revert NotCoordinator(jobId, msg.sender);
        if (job.status == Status.Settled) revert AlreadySettled(jobId);
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

    // ----------------------------------------------------------------------------------------
    // Contributors

    /// @notice Pays `account` its allocation `amount` from a settled job once the challenge
    /// window is over. Anyone may submit the claim; the funds always go to `account`.
    /// `proof` is the StandardMerkleTree proof of the leaf [account, amount].
    function claim(uint256 jobId, address account, uint256 amount, bytes32[] calldata proof)
        external
        nonReentrant
    {
        Job storage job = _job(jobId);
        if (job.status != Status.Settled) revert NotSettled(jobId, job.status);
        if (block.timestamp < job.claimsOpenAt) revert ClaimsNotOpen(jobId, job.claimsOpenAt);
        if (_hasClaimed[jobId][account]) revert AlreadyClaimed(jobId, account);
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(account, amount))));
        if (!MerkleProof.verifyCalldata(proof, job.payoutRoot, leaf)) revert InvalidProof(jobId, account, amount);
        // A root whose leaves sum above the posted total must not eat into the buyer's refund.
        uint256 remaining = job.payoutTotal - job.claimed;
        if (amount > remaining) revert ClaimExceedsTotal(jobId, amount, remaining);

        _hasClaimed[jobId][account] = true;
        job.claimed += amount;
        emit Claimed(jobId, account, amount);
        _push(job.token, account, amount);
    }

    // ----------------------------------------------------------------------------------------
    // Views

    /// @notice The full state of a job (reverts for an unknown id).
    function getJob(uint256 jobId) external view returns (Job memory) {
        return _job(jobId);
    }

    /// @notice The commitment of `round` (zeroes when not recorded).
    function getRound(uint256 jobId, uint256 round) external view returns (bytes32 modelHash, uint256 metric) {
        RoundCommitment storage r = _rounds[jobId][round];
        return (r.modelHash, r.metric);
    }

    /// @notice Whether `account` has claimed from `jobId`.
    function hasClaimed(uint256 jobId, address account) external view returns (bool) {
        return _hasClaimed[jobId][account];
    }

    /// @notice Funds the escrow still holds for `jobId`: budget - claimed - refunded.
    function held(uint256 jobId) external view returns (uint256) {
        Job storage job = _job(jobId);
        return job.budget - job.claimed - job.refunded;
    }

    // ----------------------------------------------------------------------------------------
    // Internals

    function _job(uint256 jobId) private view returns (Job storage job) {
        job = _jobs[jobId];
        if (job.status == Status.None) revert UnknownJob(jobId);
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
