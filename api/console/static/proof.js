// Recomputes a transfer's inclusion proof in the page (RFC 9162 §2.1.3.2), with the
// browser's own SHA-256 (Web Crypto), from the hashes the server sent: the leaf's bytes,
// the proof's sibling hashes and the root of the signed checkpoint. Each step's hash is
// written beside it; the last must equal the signed root.
"use strict";

(function () {
  const section = document.getElementById("proof");
  const result = document.getElementById("proof-result");
  if (!section || !result) return;

  function say(state, text) {
    result.textContent = text;
    result.className = "state-" + state;
    result.dataset.state = state;
  }

  if (!window.crypto || !window.crypto.subtle) {
    say("warn", "This browser offers no SHA-256 to this page (it needs HTTPS, or a loopback address): " +
      "the proof could not be recomputed here. Download the .tlog-proof and check it offline.");
    return;
  }

  const fromB64 = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  const toB64 = (bytes) => btoa(String.fromCharCode(...bytes));
  const sha256 = async (...parts) => {
    const joined = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) { joined.set(p, at); at += p.length; }
    return new Uint8Array(await crypto.subtle.digest("SHA-256", joined));
  };
  const equal = (a, b) => a.length === b.length && a.every((v, i) => v === b[i]);

  async function recompute() {
    const leaf = fromB64(section.dataset.leaf);
    const index = BigInt(section.dataset.index);
    const size = BigInt(section.dataset.size);
    const root = fromB64(section.dataset.root);
    const proof = (section.dataset.proof || "").split(" ").filter(Boolean).map(fromB64);
    let r = await sha256(new Uint8Array([0]), leaf);
    const leafHash = document.getElementById("leaf-hash");
    if (!equal(r, fromB64(section.dataset.leafHash))) {
      leafHash.classList.add("bad");
      say("bad", "FAILED: the leaf's bytes do not hash to the leaf hash the server sent.");
      return;
    }
    leafHash.classList.add("ok");
    let fn = index, sn = size - 1n;
    const rows = document.querySelectorAll("#proof-steps tbody tr[data-step]");
    for (let i = 0; i < proof.length; i++) {
      const p = proof[i];
      if (sn === 0n) { say("bad", "FAILED: the proof is longer than the tree allows."); return; }
      let side;
      if ((fn & 1n) === 1n || fn === sn) {
        r = await sha256(new Uint8Array([1]), p, r);
        side = "left";
        if ((fn & 1n) === 0n) {
          while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
        }
      } else {
        r = await sha256(new Uint8Array([1]), r, p);
        side = "right";
      }
      fn >>= 1n; sn >>= 1n;
      const row = rows[i];
      if (row) {
        row.querySelector(".side").textContent = "sibling on the " + side;
        row.querySelector(".result code").textContent = toB64(r);
      }
    }
    if (sn !== 0n) { say("bad", "FAILED: the proof is shorter than the tree needs."); return; }
    if (!equal(r, root)) {
      say("bad", "FAILED: the recomputed root " + toB64(r) + " is not the signed root.");
      return;
    }
    document.getElementById("signed-root").classList.add("ok");
    say("ok", "Verified in this page: leaf " + index + " is in the signed tree of " + size +
      " leaves (" + proof.length + " hashes recomputed with your browser's SHA-256).");
  }

  recompute().catch((error) => say("bad", "FAILED: " + error));
})();
