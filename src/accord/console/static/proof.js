// Verifies RFC 9162 inclusion proofs in the browser: the server sends the entry's bytes, the
// audit path and the signed root; this page hashes them itself (SHA-256 via WebCrypto) and
// says whether they meet at the root, without trusting the server's own verdict.
"use strict";

const hex = (bytes) => Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
const unhex = (text) => new Uint8Array(text.match(/../g).map((h) => parseInt(h, 16)));

async function sha256(...parts) {
  const size = parts.reduce((n, p) => n + p.length, 0);
  const joined = new Uint8Array(size);
  let at = 0;
  for (const p of parts) { joined.set(p, at); at += p.length; }
  return new Uint8Array(await crypto.subtle.digest("SHA-256", joined));
}

// RFC 9162, 2.1.3.2: verifying an inclusion proof
async function rootFromPath(index, treeSize, leaf, path) {
  if (index >= treeSize) return null;
  let fn = index, sn = treeSize - 1;
  let r = await sha256(new Uint8Array([0]), leaf);
  for (const p of path) {
    if (sn === 0) return null;
    if ((fn & 1) === 1 || fn === sn) {
      r = await sha256(new Uint8Array([1]), p, r);
      if ((fn & 1) === 0) {
        while ((fn & 1) === 0 && fn !== 0) { fn >>= 1; sn >>= 1; }
      }
    } else {
      r = await sha256(new Uint8Array([1]), r, p);
    }
    fn >>= 1; sn >>= 1;
  }
  return sn === 0 ? r : null;
}

async function verify(button) {
  const out = button.parentElement.querySelector("output");
  out.textContent = "checking…";
  out.className = "proof";
  try {
    const response = await fetch(`/console/audit/proof/${button.dataset.index}`, { credentials: "same-origin" });
    if (!response.ok) throw new Error(`the server answered ${response.status}`);
    const proof = await response.json();
    const signed = document.getElementById("tree-head");
    if (signed && (String(proof.tree_size) !== signed.dataset.size || proof.root_hash !== signed.dataset.root)) {
      throw new Error("the proof is for another tree head than the one shown");
    }
    const root = await rootFromPath(proof.index, proof.tree_size, unhex(proof.leaf), proof.path.map(unhex));
    if (root !== null && hex(root) === proof.root_hash) {
      out.textContent = `✔ included: ${proof.path.length} hashes lead to the signed root of ${proof.tree_size} entries`;
      out.className = "proof ok";
    } else {
      out.textContent = "✘ not included: the path does not lead to the signed root";
      out.className = "proof bad";
    }
  } catch (error) {
    out.textContent = `✘ could not verify: ${error.message}`;
    out.className = "proof bad";
  }
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("button.verify");
  if (button) verify(button);
});
