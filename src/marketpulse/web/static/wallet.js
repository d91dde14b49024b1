// Wallet signatures (no element may have the id "ethereum" or "solana": ids become window globals) for sign-in (/signin) and linking (/settings): EIP-1193 Ethereum (EIP-4361 message) and
// Solana (window.solana signMessage). Each returns the body its verify endpoint takes, or throws a readable Error.
"use strict";

(function () {
  function eip4361(n, address, chainId) {
    return `${n.domain} wants you to sign in with your Ethereum account:\n${address}\n\n` +
      `Sign in to marketpulse.\n\nURI: ${n.uri}\nVersion: 1\nChain ID: ${chainId}\nNonce: ${n.nonce}\n` +
      `Issued At: ${new Date().toISOString()}\nExpiration Time: ${new Date(n.expires_at_ms).toISOString()}`;
  }

  async function ethereum() {
    const eth = window.ethereum;
    if (!eth) throw new Error("No Ethereum wallet found in this browser (install MetaMask or a similar wallet).");
    const [address] = await eth.request({ method: "eth_requestAccounts" });
    const nonce = await MP.api("POST", "/api/v1/auth/siwe/nonce");
    if (!nonce.ok) throw new Error(MP.errorText(nonce));
    const walletChain = parseInt(await eth.request({ method: "eth_chainId" }), 16);
    const chainId = nonce.data.chain_ids.includes(walletChain) ? walletChain : nonce.data.chain_ids[0];
    const message = eip4361(nonce.data, address, chainId);
    const signature = await eth.request({ method: "personal_sign", params: [message, address] });
    return { message, signature };
  }

  const B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
  function base58(bytes) {
    let n = 0n;
    for (const b of bytes) n = n * 256n + BigInt(b);
    let out = "";
    while (n > 0n) { out = B58[Number(n % 58n)] + out; n /= 58n; }
    for (const b of bytes) { if (b !== 0) break; out = "1" + out; }
    return out;
  }

  async function solana() {
    const sol = window.solana;
    if (!sol) throw new Error("No Solana wallet found in this browser (install Phantom or a similar wallet).");
    const connected = await sol.connect();
    const publicKey = (connected && connected.publicKey) || sol.publicKey;
    const nonce = await MP.api("POST", "/api/v1/auth/solana/nonce");
    if (!nonce.ok) throw new Error(MP.errorText(nonce));
    const signed = await sol.signMessage(new TextEncoder().encode(nonce.data.message), "utf8");
    return { public_key: publicKey.toString(), nonce: nonce.data.nonce, signature: base58(signed.signature || signed) };
  }

  window.MPWallet = {
    ethereum: async () => MP.api("POST", "/api/v1/auth/siwe/verify", await ethereum()),
    solana: async () => MP.api("POST", "/api/v1/auth/solana/verify", await solana()),
  };
})();
