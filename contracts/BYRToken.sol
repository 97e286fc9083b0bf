// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title BYRToken
/// @notice ERC-20 reward for accepted corpus contributions. Each contribution is rewarded at most once.
/// @dev `academicRef` links a reward to the academic chain (the anchored batch Merkle root).
contract BYRToken is ERC20, AccessControl {
    /// @notice May mint rewards (the reward service).
    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");

    mapping(bytes32 contributionId => bool) private _rewarded;

    event ContributionRewarded(
        bytes32 indexed contributionId,
        address indexed to,
        uint256 amount,
        bytes32 indexed academicRef
    );

    error AlreadyRewarded(bytes32 contributionId);
    error ZeroAmount();
    error ZeroAddress();

    /// @param admin Receives DEFAULT_ADMIN_ROLE (grants MINTER_ROLE).
    constructor(address admin) ERC20("BYR Token", "BYR") {
        if (admin == address(0)) revert ZeroAddress();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    /// @notice Mints `amount` to `to` as the reward of `contributionId`; a contribution is rewarded once.
    function mint(address to, uint256 amount, bytes32 contributionId, bytes32 academicRef)
        external
        onlyRole(MINTER_ROLE)
    {
        if (amount == 0) revert ZeroAmount();
        if (_rewarded[contributionId]) revert AlreadyRewarded(contributionId);
        _rewarded[contributionId] = true;
        _mint(to, amount);
        emit ContributionRewarded(contributionId, to, amount, academicRef);
    }

    /// @return Whether `contributionId` has been rewarded.
    function rewarded(bytes32 contributionId) external view returns (bool) {
        return _rewarded[contributionId];
    }
}
