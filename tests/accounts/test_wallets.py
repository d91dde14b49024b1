"""Wallet sign-in with real keys: EIP-4361 messages signed by fresh Ethereum accounts (eth-account) and Solana
messages signed by fresh ed25519 keys (PyNaCl). Every refusal is a 4xx naming the field and changes nothing: no
user, no wallet, and the nonce still works for the right proof."""

from __future__ import annotations

from typing import Any

import base58
import httpx
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from nacl.signing import SigningKey
from siwe import SiweMessage
from sqlalchemy import func, select

from marketpulse.accounts.tables import UserRow, WalletRow
from marketpulse.accounts.wallets import iso_ms
from marketpulse.clock import FakeClock
from marketpulse.runtime import Runtime

from .conftest import STRONG, Sink, bearer, signin, signup_verified


def siwe_text(account: LocalAccount, nonce: str, issued_ms: int, *, domain: str = "127.0.0.1:8000",
              uri: str = "http://127.0.0.1:8000", chain_id: int = 1) -> str:
    return SiweMessage(domain=domain, address=account.address, uri=uri, version="1", chain_id=chain_id,
                       issued_at=iso_ms(issued_ms), nonce=nonce,
                       statement="Sign in to marketpulse").prepare_message()


def eth_sign(account: LocalAccount, text: str) -> str:
    return "0x" + bytes(account.sign_message(encode_defunct(text=text)).signature).hex()


async def siwe_nonce(client: httpx.AsyncClient) -> dict[str, Any]:
    resp = await client.post("/api/v1/auth/siwe/nonce")
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


async def counts(runtime: Runtime) -> tuple[int, int]:
    async with runtime.services.accounts.sessions() as s:
        users = (await s.execute(select(func.count()).select_from(UserRow))).scalar_one()
        wallets = (await s.execute(select(func.count()).select_from(WalletRow))).scalar_one()
    return users, wallets


async def test_siwe_nonce_names_what_the_server_accepts(client: httpx.AsyncClient) -> None:
    first, second = await siwe_nonce(client), await siwe_nonce(client)
    assert first["domain"] == "127.0.0.1:8000" and first["uri"] == "http://127.0.0.1:8000"
    assert first["chain_ids"] == [1]
    assert first["nonce"] != second["nonce"] and first["nonce"].isalnum() and len(first["nonce"]) >= 8


async def test_siwe_signs_a_new_wallet_in_and_the_same_wallet_again_as_the_same_user(
        client: httpx.AsyncClient, clock: FakeClock) -> None:
    account: LocalAccount = Account.create()
    tokens = []
    for _ in range(2):
        nonce = (await siwe_nonce(client))["nonce"]
        text = siwe_text(account, nonce, clock.now_ms())
        resp = await client.post("/api/v1/auth/siwe/verify",
                                 json={"message": text, "signature": eth_sign(account, text)})
        assert resp.status_code == 200, resp.text
        assert set(resp.json()) == {"access_token", "refresh_token", "token_type", "expires_in"}
        assert "mp_access" in resp.cookies
        client.cookies.clear()
        tokens.append(resp.json())
    me = [(await client.get("/api/v1/auth/me", headers=bearer(t))).json() for t in tokens]
    assert me[0]["id"] == me[1]["id"] and me[0]["email"] is None
    assert [(w["chain"], w["address"]) for w in me[0]["wallets"]] == [("ethereum", account.address)]


@pytest.mark.parametrize("case", ["replayed", "other_domain", "other_uri", "other_chain", "expired", "bad_signature",
                                  "other_signer", "unknown_nonce", "not_eip4361"])
async def test_siwe_refusals_change_nothing(case: str, client: httpx.AsyncClient, clock: FakeClock,
                                            runtime: Runtime) -> None:
    account: LocalAccount = Account.create()
    if case == "replayed":  # a message that already signed in once
        nonce = (await siwe_nonce(client))["nonce"]
        text = siwe_text(account, nonce, clock.now_ms())
        first = await client.post("/api/v1/auth/siwe/verify",
                                  json={"message": text, "signature": eth_sign(account, text)})
        assert first.status_code == 200
        client.cookies.clear()
    before = await counts(runtime)
    nonce = (await siwe_nonce(client))["nonce"] if case != "replayed" else nonce
    text = siwe_text(account, nonce, clock.now_ms(),
                     domain="evil.example" if case == "other_domain" else "127.0.0.1:8000",
                     uri="https://evil.example" if case == "other_uri" else "http://127.0.0.1:8000",
                     chain_id=137 if case == "other_chain" else 1)
    if case == "unknown_nonce":
        text = siwe_text(account, "a" * 32, clock.now_ms())
    signature = eth_sign(Account.create() if case == "other_signer" else account, text)
    if case == "bad_signature":
        signature = signature[:-4] + ("0000" if not signature.endswith("0000") else "1111")
    if case == "not_eip4361":
        text = "please let me in\n" + nonce
    if case == "expired":
        clock.advance(300_000)  # PULSE_WALLET_NONCE_TTL_S's default
    resp = await client.post("/api/v1/auth/siwe/verify", json={"message": text, "signature": signature})
    assert resp.status_code == 422, resp.text
    field = "signature" if case in {"bad_signature", "other_signer"} else "message"
    assert resp.json()["detail"][0]["loc"] == ["body", field], resp.text
    assert "mp_access" not in resp.cookies
    assert await counts(runtime) == before
    if case in {"bad_signature", "other_signer", "other_domain", "other_chain", "other_uri"}:
        # the refusal didn't spend the nonce: the right proof still works with it
        good = siwe_text(account, nonce, clock.now_ms())
        ok = await client.post("/api/v1/auth/siwe/verify", json={"message": good, "signature": eth_sign(account, good)})
        assert ok.status_code == 200, ok.text


async def test_siwe_accepts_the_chains_and_domain_the_settings_name(client: httpx.AsyncClient, clock: FakeClock,
                                                                     runtime: Runtime) -> None:
    settings = runtime.services.accounts.settings
    settings.siwe_chain_ids, settings.siwe_domain, settings.siwe_uri = [8453], "pulse.example", "https://pulse.example"
    answer = await siwe_nonce(client)
    assert (answer["domain"], answer["uri"], answer["chain_ids"]) == ("pulse.example", "https://pulse.example", [8453])
    account: LocalAccount = Account.create()
    for chain, expected in ((1, 422), (8453, 200)):
        text = siwe_text(account, answer["nonce"], clock.now_ms(), domain="pulse.example",
                         uri="https://pulse.example", chain_id=chain)
        resp = await client.post("/api/v1/auth/siwe/verify",
                                 json={"message": text, "signature": eth_sign(account, text)})
        assert resp.status_code == expected, resp.text


async def test_malformed_wallet_bodies_are_422_naming_the_field(client: httpx.AsyncClient) -> None:
    for path, body, field in (
            ("/api/v1/auth/siwe/verify", {"message": "x", "signature": "zz"}, "signature"),
            ("/api/v1/auth/siwe/verify", {"message": "a\x00b", "signature": "0x00"}, "message"),
            ("/api/v1/auth/solana/verify", {"public_key": "0OIl" * 10, "nonce": "a" * 32, "signature": "1" * 88},
             "public_key"),
            ("/api/v1/auth/solana/verify", {"public_key": "1" * 44, "nonce": "a" * 32, "signature": "1" * 88},
             "public_key")):
        resp = await client.post(path, json=body)
        assert resp.status_code == 422, resp.text
        assert resp.json()["detail"][0]["loc"] == ["body", field], resp.text


async def solana_proof(client: httpx.AsyncClient, key: SigningKey) -> dict[str, str]:
    resp = await client.post("/api/v1/auth/solana/nonce")
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    return {"public_key": base58.b58encode(bytes(key.verify_key)).decode(), "nonce": answer["nonce"],
            "signature": base58.b58encode(key.sign(answer["message"].encode()).signature).decode()}


async def test_solana_signs_in_with_an_ed25519_signature_once_per_nonce(client: httpx.AsyncClient,
                                                                        runtime: Runtime) -> None:
    key = SigningKey.generate()
    proof = await solana_proof(client, key)
    resp = await client.post("/api/v1/auth/solana/verify", json=proof)
    assert resp.status_code == 200, resp.text
    me = (await client.get("/api/v1/auth/me", headers=bearer(resp.json()))).json()
    assert [(w["chain"], w["address"]) for w in me["wallets"]] == [("solana", proof["public_key"])]
    client.cookies.clear()
    before = await counts(runtime)
    replay = await client.post("/api/v1/auth/solana/verify", json=proof)
    assert replay.status_code == 422 and replay.json()["detail"][0]["loc"] == ["body", "nonce"], replay.text
    assert await counts(runtime) == before


@pytest.mark.parametrize("case", ["other_key", "other_nonce", "expired"])
async def test_solana_refusals_change_nothing(case: str, client: httpx.AsyncClient, clock: FakeClock,
                                              runtime: Runtime) -> None:
    key = SigningKey.generate()
    proof = await solana_proof(client, key)
    if case == "other_key":
        proof["public_key"] = base58.b58encode(bytes(SigningKey.generate().verify_key)).decode()
    elif case == "other_nonce":  # a signature over another nonce's message
        proof["nonce"] = (await solana_proof(client, key))["nonce"]
    else:
        clock.advance(300_000)
    before = await counts(runtime)
    resp = await client.post("/api/v1/auth/solana/verify", json=proof)
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"][0]["loc"] == ["body", "nonce" if case == "expired" else "signature"], resp.text
    assert await counts(runtime) == before


async def test_a_signed_in_user_links_wallets_and_signs_in_with_them(client: httpx.AsyncClient, sink: Sink,
                                                                     clock: FakeClock) -> None:
    user_id = await signup_verified(client, sink, "ada@example.com")
    session = bearer(await signin(client, "ada@example.com"))
    account: LocalAccount = Account.create()
    text = siwe_text(account, (await siwe_nonce(client))["nonce"], clock.now_ms())
    linked = await client.post("/api/v1/auth/siwe/verify", headers=session,
                               json={"message": text, "signature": eth_sign(account, text)})
    assert linked.status_code == 200, linked.text
    assert linked.json()["id"] == user_id and linked.json()["wallets"][0]["address"] == account.address
    key = SigningKey.generate()
    linked = await client.post("/api/v1/auth/solana/verify", headers=session, json=await solana_proof(client, key))
    assert linked.status_code == 200, linked.text
    me = (await client.get("/api/v1/auth/me", headers=session)).json()
    assert [w["chain"] for w in me["wallets"]] == ["ethereum", "solana"]
    # the linked wallet now signs in as the email account
    text = siwe_text(account, (await siwe_nonce(client))["nonce"], clock.now_ms())
    resp = await client.post("/api/v1/auth/siwe/verify", json={"message": text, "signature": eth_sign(account, text)})
    client.cookies.clear()
    assert (await client.get("/api/v1/auth/me", headers=bearer(resp.json()))).json()["email"] == "ada@example.com"


async def test_a_wallet_of_another_account_is_not_linked(client: httpx.AsyncClient, sink: Sink,
                                                         runtime: Runtime) -> None:
    key = SigningKey.generate()
    assert (await client.post("/api/v1/auth/solana/verify", json=await solana_proof(client, key))).status_code == 200
    client.cookies.clear()
    await signup_verified(client, sink, "bob@example.com")
    session = bearer(await signin(client, "bob@example.com"))
    before = await counts(runtime)
    resp = await client.post("/api/v1/auth/solana/verify", headers=session, json=await solana_proof(client, key))
    assert resp.status_code == 409, resp.text
    assert await counts(runtime) == before
    assert (await client.get("/api/v1/auth/me", headers=session)).json()["wallets"] == []


async def test_a_bad_token_while_linking_is_401_not_a_new_account(client: httpx.AsyncClient,
                                                                  runtime: Runtime) -> None:
    before = await counts(runtime)
    resp = await client.post("/api/v1/auth/solana/verify", headers={"Authorization": "Bearer nope"},
                             json=await solana_proof(client, SigningKey.generate()))
    assert resp.status_code == 401, resp.text
    assert await counts(runtime) == before


async def test_wallet_nonces_live_as_long_as_the_setting_says(client: httpx.AsyncClient, clock: FakeClock,
                                                              runtime: Runtime) -> None:
    runtime.services.accounts.settings.wallet_nonce_ttl_s = 60
    key = SigningKey.generate()
    proof = await solana_proof(client, key)
    answer = await siwe_nonce(client)
    assert answer["expires_at_ms"] == clock.now_ms() + 60_000
    clock.advance(59_999)
    assert (await client.post("/api/v1/auth/solana/verify", json=proof)).status_code == 200
    client.cookies.clear()
    clock.advance(1)
    account: LocalAccount = Account.create()
    text = siwe_text(account, answer["nonce"], clock.now_ms())
    late = await client.post("/api/v1/auth/siwe/verify", json={"message": text, "signature": eth_sign(account, text)})
    assert late.status_code == 422 and "expired" in late.text, late.text


async def test_export_lists_linked_wallets_and_erasure_removes_them(client: httpx.AsyncClient, sink: Sink,
                                                                    runtime: Runtime) -> None:
    await signup_verified(client, sink, "eve@example.com")
    session = bearer(await signin(client, "eve@example.com"))
    key = SigningKey.generate()
    proof = await solana_proof(client, key)
    assert (await client.post("/api/v1/auth/solana/verify", headers=session, json=proof)).status_code == 200
    exported = (await client.get("/api/v1/account/export", headers=session)).json()
    assert [w["address"] for w in exported["wallets"]] == [proof["public_key"]]
    erased = await client.request("DELETE", "/api/v1/account", headers=session, json={"password": STRONG})
    assert erased.status_code == 204, erased.text
    assert await counts(runtime) == (0, 0)
