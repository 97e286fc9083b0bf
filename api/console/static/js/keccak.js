// Keccak-256 (the Ethereum hash, original Keccak padding, not SHA3-256) and the Merkle proof
// walk of ledger/merkle.py, so that the audit page redraws a proof path from leaf to root in
// the browser instead of trusting the server's word. 64-bit lanes as BigInt: a proof of
// depth 17 is a few milliseconds.

const MASK = (1n << 64n) - 1n;
const ROUND_CONSTANTS = [
  0x0000000000000001n, 0x0000000000008082n, 0x800000000000808an, 0x8000000080008000n,
  0x000000000000808bn, 0x0000000080000001n, 0x8000000080008081n, 0x8000000000008009n,
  0x000000000000008an, 0x0000000000000088n, 0x0000000080008009n, 0x000000008000000an,
  0x000000008000808bn, 0x800000000000008bn, 0x8000000000008089n, 0x8000000000008003n,
  0x8000000000008002n, 0x8000000000000080n, 0x000000000000800an, 0x800000008000000an,
  0x8000000080008081n, 0x8000000000008080n, 0x0000000080000001n, 0x8000000080008008n,
];
// rotation of lane x + 5y
const ROTATIONS = [0, 1, 62, 28, 27, 36, 44, 6, 55, 20, 3, 10, 43, 25, 39, 41, 45, 15, 21, 8, 18, 2, 61, 56, 14];
const RATE = 136;

function rotl(value, shift) {
  if (shift === 0) return value;
  const n = BigInt(shift);
  return ((value << n) | (value >> (64n - n))) & MASK;
}

function permute(a) {
  const c = new Array(5);
  const b = new Array(25);
  for (const rc of ROUND_CONSTANTS) {
    for (let x = 0; x < 5; x++) c[x] = a[x] ^ a[x + 5] ^ a[x + 10] ^ a[x + 15] ^ a[x + 20];
    for (let x = 0; x < 5; x++) {
      const d = c[(x + 4) % 5] ^ rotl(c[(x + 1) % 5], 1);
      for (let y = 0; y < 25; y += 5) a[x + y] ^= d;
    }
    for (let x = 0; x < 5; x++) {
      for (let y = 0; y < 5; y++) b[y + 5 * ((2 * x + 3 * y) % 5)] = rotl(a[x + 5 * y], ROTATIONS[x + 5 * y]);
    }
    for (let y = 0; y < 25; y += 5) {
      for (let x = 0; x < 5; x++) a[x + y] = b[x + y] ^ (~b[((x + 1) % 5) + y] & MASK & b[((x + 2) % 5) + y]);
    }
    a[0] ^= rc;
  }
}

/** keccak256(bytes) as a Uint8Array of 32 bytes. */
export function keccak256(bytes) {
  const padded = new Uint8Array(Math.floor(bytes.length / RATE + 1) * RATE);
  padded.set(bytes);
  padded[bytes.length] ^= 0x01;
  padded[padded.length - 1] ^= 0x80;
  const state = new Array(25).fill(0n);
  for (let offset = 0; offset < padded.length; offset += RATE) {
    for (let lane = 0; lane < RATE / 8; lane++) {
      let value = 0n;
      for (let i = 7; i >= 0; i--) value = (value << 8n) | BigInt(padded[offset + lane * 8 + i]);
      state[lane] ^= value;
    }
    permute(state);
  }
  const out = new Uint8Array(32);
  for (let lane = 0; lane < 4; lane++) {
    let value = state[lane];
    for (let i = 0; i < 8; i++) {
      out[lane * 8 + i] = Number(value & 0xffn);
      value >>= 8n;
    }
  }
  return out;
}

export function fromHex(hex) {
  const text = String(hex).replace(/^0x/i, "");
  if (!/^([0-9a-f]{2})*$/i.test(text)) throw new Error("not a hex string");
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function toHex(bytes) {
  return "0x" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function compare(a, b) {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}

/** The node hash of ledger/merkle.py (and OpenZeppelin's MerkleProof): the pair sorted. */
export function nodeHash(a, b) {
  const joined = new Uint8Array(64);
  const [first, second] = compare(a, b) <= 0 ? [a, b] : [b, a];
  joined.set(first);
  joined.set(second, 32);
  return keccak256(joined);
}

/**
 * Walk a proof from the leaf to the root: one step per sibling, each with the node, its
 * sibling, which side the sibling sits on (in sorted order) and the parent they hash to.
 */
export function proofPath(leafHex, proofHex) {
  let node = fromHex(leafHex);
  const steps = [];
  for (const siblingHex of proofHex) {
    const sibling = fromHex(siblingHex);
    const parent = nodeHash(node, sibling);
    steps.push({node: toHex(node), sibling: toHex(sibling), siblingFirst: compare(sibling, node) < 0, parent: toHex(parent)});
    node = parent;
  }
  return {steps, root: toHex(node)};
}
