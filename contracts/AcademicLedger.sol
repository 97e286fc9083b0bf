// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

/// @title AcademicLedger
/// @notice Anchors Merkle roots of accepted corpus batches and the provenance of training runs.
/// @dev Storage is kept to what other contracts and auditors must look up on chain: batch -> root,
///      root -> batch and run -> adapter. Everything else (metadata hash, institution, record count,
///      dataset root, recipe, base model) is carried by the indexed events, which are cheaper than storage.
///      Ids are bytes32 keys: keccak256 of the UTF-8 string id used off chain.
contract AcademicLedger is AccessControl {
    /// @notice May anchor corpus batches (the intake/anchoring service).
    bytes32 public constant SUBMITTER_ROLE = keccak256("SUBMITTER_ROLE");
    /// @notice May anchor training runs (the trainer service).
    bytes32 public constant TRAINER_ROLE = keccak256("TRAINER_ROLE");

    /// @dev Packed into one slot: a batch anchor reads a single slot to check its institution.
    struct Institution {
        address account;
        bool active;
    }

    mapping(bytes32 institutionId => Institution) private _institutions;
    mapping(bytes32 batchId => bytes32 merkleRoot) private _rootOf;
    mapping(bytes32 merkleRoot => bytes32 batchId) private _batchOfRoot;
    mapping(bytes32 runId => bytes32 adapterHash) private _adapterOf;

    event InstitutionRegistered(bytes32 indexed institutionId, address indexed account);
    event InstitutionStatusChanged(bytes32 indexed institutionId, bool active);
    event BatchAnchored(
        bytes32 indexed batchId,
        bytes32 indexed merkleRoot,
        bytes32 metadataHash,
        bytes32 indexed institutionId,
        uint32 recordCount
    );
    event TrainingRunAnchored(
        bytes32 indexed runId,
        bytes32 indexed datasetRoot,
        bytes32 adapterHash,
        bytes32 recipeHash,
        bytes32 baseModelHash
    );

    error InstitutionAlreadyRegistered(bytes32 institutionId);
    error ZeroAddress();
    error UnknownInstitution(bytes32 institutionId);
    error InactiveInstitution(bytes32 institutionId);
    error BatchAlreadyAnchored(bytes32 batchId);
    error RootAlreadyAnchored(bytes32 merkleRoot);
    error ZeroRoot();
    error EmptyBatch();
    error RunAlreadyAnchored(bytes32 runId);

    /// @param admin Receives DEFAULT_ADMIN_ROLE (registers institutions, grants roles).
    constructor(address admin) {
        if (admin == address(0)) revert ZeroAddress();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    // ------------------------------------------------------------------ institutions

    /// @notice Registers an institution (active) with the account that receives its rewards.
    function registerInstitution(bytes32 id, address account) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (account == address(0)) revert ZeroAddress();
        if (_institutions[id].account != address(0)) revert InstitutionAlreadyRegistered(id);
        _institutions[id] = Institution({account: account, active: true});
        emit InstitutionRegistered(id, account);
    }

    /// @notice Activates or deactivates a registered institution; inactive ones cannot anchor batches.
    function setInstitutionActive(bytes32 id, bool active) external onlyRole(DEFAULT_ADMIN_ROLE) {
        Institution storage inst = _institutions[id];
        if (inst.account == address(0)) revert UnknownInstitution(id);
        inst.active = active;
        emit InstitutionStatusChanged(id, active);
    }

    /// @return account Zero when the institution is unknown.
    /// @return active Whether it may currently anchor batches.
    function institutionOf(bytes32 id) external view returns (address account, bool active) {
        Institution memory inst = _institutions[id];
        return (inst.account, inst.active);
    }

    // ------------------------------------------------------------------ corpus batches

    /// @notice Anchors the Merkle root of one accepted batch. A batch and a root can each be anchored once.
    function anchorBatch(
        bytes32 batchId,
        bytes32 merkleRoot,
        bytes32 metadataHash,
        bytes32 institutionId,
        uint32 recordCount
    ) external onlyRole(SUBMITTER_ROLE) {
        if (merkleRoot == bytes32(0)) revert ZeroRoot();
        if (recordCount == 0) revert EmptyBatch();
        Institution memory inst = _institutions[institutionId];
        if (inst.account == address(0)) revert UnknownInstitution(institutionId);
        if (!inst.active) revert InactiveInstitution(institutionId);
        if (_rootOf[batchId] != bytes32(0)) revert BatchAlreadyAnchored(batchId);
        if (_batchOfRoot[merkleRoot] != bytes32(0)) revert RootAlreadyAnchored(merkleRoot);
        _rootOf[batchId] = merkleRoot;
        _batchOfRoot[merkleRoot] = batchId;
        emit BatchAnchored(batchId, merkleRoot, metadataHash, institutionId, recordCount);
    }

    /// @return The anchored root of `batchId`, zero when the batch is not anchored.
    function rootOf(bytes32 batchId) external view returns (bytes32) {
        return _rootOf[batchId];
    }

    /// @return The batch whose root is `root`, zero when no batch has that root.
    function batchOfRoot(bytes32 root) external view returns (bytes32) {
        return _batchOfRoot[root];
    }

    /// @notice Whether `leaf` (an OpenZeppelin StandardMerkleTree leaf) belongs to the anchored batch.
    /// @return False when the batch is not anchored or the proof does not lead to its root.
    function verifyRecord(bytes32 batchId, bytes32 leaf, bytes32[] calldata proof) external view returns (bool) {
        bytes32 root = _rootOf[batchId];
        if (root == bytes32(0)) return false;
        return MerkleProof.verifyCalldata(proof, root, leaf);
    }

    /// @notice Whether `proof` leads from `leaf` to `root` (sorted-pair hashing, as OpenZeppelin's trees).
    function verifyProof(bytes32 root, bytes32 leaf, bytes32[] calldata proof) external pure returns (bool) {
        return MerkleProof.verifyCalldata(proof, root, leaf);
    }

    // ------------------------------------------------------------------ training runs

    /// @notice Anchors a finished training run: its adapter, recipe and base model, and the dataset root.
    function anchorTrainingRun(
        bytes32 runId,
        bytes32 datasetRoot,
        bytes32 adapterHash,
        bytes32 recipeHash,
        bytes32 baseModelHash
    ) external onlyRole(TRAINER_ROLE) {
        // A zero adapter hash would read as "not anchored" through adapterOf.
        if (datasetRoot == bytes32(0) || adapterHash == bytes32(0)) revert ZeroRoot();
        if (_adapterOf[runId] != bytes32(0)) revert RunAlreadyAnchored(runId);
        _adapterOf[runId] = adapterHash;
        emit TrainingRunAnchored(runId, datasetRoot, adapterHash, recipeHash, baseModelHash);
    }

    /// @return The anchored adapter hash of `runId`, zero when the run is not anchored.
    function adapterOf(bytes32 runId) external view returns (bytes32) {
        return _adapterOf[runId];
    }
}
