// Reference oracle: OpenZeppelin's own StandardMerkleTree, driven by JSON on stdin.
//
// Input:  {"values": [[recordHash, salt], ...],          // optional: build a tree of these
//          "sortLeaves": true,                           // optional, default true (as OpenZeppelin)
//          "verify": [{"root", "value", "proof"}, ...],  // optional: StandardMerkleTree.verify each
//          "load": <standard-v1 dump>}                   // optional: StandardMerkleTree.load it
// Output: {"root", "proofs" (by value index), "dump", "verified": [bool, ...],
//          "loaded": {"root", "proofs"} | {"error"}}
import { StandardMerkleTree } from "@openzeppelin/merkle-tree";

const TYPES = ["bytes32", "bytes32"];

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const input = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const out = {};

const proofsOf = (tree) => Array.from({ length: tree.length }, (_, i) => tree.getProof(i));

if (input.values) {
  const tree = StandardMerkleTree.of(input.values, TYPES, { sortLeaves: input.sortLeaves ?? true });
  out.root = tree.root;
  out.proofs = proofsOf(tree);
  out.dump = tree.dump();
}

out.verified = (input.verify ?? []).map(({ root, value, proof }) => {
  try {
    return StandardMerkleTree.verify(root, TYPES, value, proof);
  } catch (error) {
    // A malformed proof element is a failed verification, not a crash of the oracle.
    return false;
  }
});

if (input.load) {
  try {
    const tree = StandardMerkleTree.load(input.load);
    out.loaded = { root: tree.root, proofs: proofsOf(tree) };
  } catch (error) {
    out.loaded = { error: String(error.message ?? error) };
  }
}

process.stdout.write(JSON.stringify(out));
