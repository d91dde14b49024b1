"""Tax over HTTP: import a generic CSV (counts, duplicates, rejected lines; twice changes nothing), run a report as a
job, read its summary and download its CSVs; signed-in only, and another user's report answers 404."""

from __future__ import annotations

import io

import httpx
from pypdf import PdfReader

from accounts.conftest import STRONG, bearer, signin  # noqa: I001 (tests/accounts)
from marketpulse.runtime import Runtime

IMPORT = "/api/v1/tax/transactions/import"
REPORTS = "/api/v1/tax/reports"
FILE = (
    "timestamp,type,asset,amount,price_usd,fee_usd,account,tx_id\n"
    "2023-01-10T00:00:00Z,buy,BTC,1,20000,10,cb,a1\n"
    "2023-06-01,buy,BTC,1,30000,0,cb,a2\n"
    "2024-01-10,sell,BTC,1.5,40000,15,cb,s1\n"
    "2024-01-10,sell,BTC,oops,40000,15,cb,s2\n"
    "2024-02-01,income,ETH,2,2000,,lido,i1\n"
    "2024-02-01,income,ETH,2,2000,,lido,i1\n"
    "2024-03-01,sell,SOL,3,,,kr,s3\n"
)


async def user(client: httpx.AsyncClient, runtime: Runtime, email: str) -> dict[str, str]:
    await runtime.services.accounts.create_user(email, STRONG, plan="free", verified=True)
    return bearer(await signin(client, email))


async def upload(client: httpx.AsyncClient, headers: dict[str, str], text: str) -> httpx.Response:
    return await client.post(IMPORT, files={"file": ("tx.csv", text.encode(), "text/csv")}, headers=headers)


async def test_import_counts_rows_and_a_second_import_changes_nothing(client: httpx.AsyncClient,
                                                                      runtime: Runtime) -> None:
    me = await user(client, runtime, "tax@example.com")
    first = await upload(client, me, FILE)
    assert first.status_code == 200, first.text
    body = first.json()
    # 7 rows: line 5 has a bad amount, line 8 a sale without price; line 7 repeats line 6.
    assert (body["layout"], body["rows_read"], body["imported"], body["duplicates"]) == ("generic", 7, 4, 1)
    assert [(r["line"], r["field"]) for r in body["rejected"]] == [(5, "amount"), (8, "price_usd")]
    again = (await upload(client, me, FILE)).json()
    assert (again["rows_read"], again["imported"], again["duplicates"]) == (7, 0, 5)


async def test_bad_upload_is_a_422_naming_the_file(client: httpx.AsyncClient, runtime: Runtime) -> None:
    me = await user(client, runtime, "bad@example.com")
    no_header = await upload(client, me, "when,what\n1,2\n")
    assert no_header.status_code == 422 and no_header.json()["detail"][0]["loc"] == ["body", "file"]
    not_multipart = await client.post(IMPORT, content=b"timestamp,type\n", headers={**me, "Content-Type": "text/csv"})
    assert not_multipart.status_code == 422 and not_multipart.json()["detail"][0]["loc"] == ["body", "file"]
    unauthenticated = await client.post(IMPORT, files={"file": ("tx.csv", FILE.encode(), "text/csv")})
    assert unauthenticated.status_code == 401


async def test_a_report_runs_as_a_job_and_its_csvs_download(client: httpx.AsyncClient, runtime: Runtime) -> None:
    me = await user(client, runtime, "report@example.com")
    await upload(client, me, FILE)
    started = await client.post(REPORTS, json={"year": 2024, "method": "lifo", "per_wallet": False}, headers=me)
    assert started.status_code == 202, started.text
    report_id = started.json()["id"]
    await runtime.services.tax.wait()
    done = (await client.get(f"{REPORTS}/{report_id}", headers=me)).json()
    assert (done["status"], done["progress"], done["method"]) == ("done", 100, "lifo")
    # LIFO: 1.5 BTC sold at 40,000 − 15 = 59,985: a2 whole (30,000) + half of a1 (10,005) → gain 19,980, short.
    assert done["summary"]["short"] == {"proceeds": "59985.00", "cost_basis": "40005.00", "gain_loss": "19980.00"}
    assert done["summary"]["long"]["proceeds"] == "0"
    assert done["summary"]["income_usd"] == "4000.00" and done["summary"]["disposals"] == 1
    assert set(done["files"]) == {"form8949.csv", "form8949.pdf", "schedule-d.csv", "gains.csv", "income.csv"}

    form = await client.get(f"{REPORTS}/{report_id}/form8949.csv", headers=me)
    assert form.status_code == 200 and form.headers["content-type"].startswith("text/csv")
    assert form.text.splitlines() == [
        "description,date_acquired,date_sold,proceeds,cost_basis,gain_loss,term,account",
        "1 BTC,2023-06-01,2024-01-10,39990.00,30000.00,9990.00,short,cb",
        "0.5 BTC,2023-01-10,2024-01-10,19995.00,10005.00,9990.00,short,cb",
    ]
    pdf = await client.get(f"{REPORTS}/{report_id}/form8949.pdf", headers=me)
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    text = PdfReader(io.BytesIO(pdf.content)).pages[0].extract_text()
    assert "Form 8949 (2024)" in text and "report@example.com" in text
    assert "1 BTC" in text and "39990.00" in text and "59985.00" in text  # a line, and Part I's total proceeds
    assert (await client.get(f"{REPORTS}/{report_id}/form8949.pdf", headers=await user(
        client, runtime, "peek@example.com"))).status_code == 404
    income = await client.get(f"{REPORTS}/{report_id}/income.csv", headers=me)
    assert income.text.splitlines()[1] == "2024-02-01,ETH,2,4000.00,lido,i1"
    assert (await client.get(f"{REPORTS}/{report_id}/schedule-d.csv", headers=me)).status_code == 200
    assert (await client.get(f"{REPORTS}/{report_id}/gains.csv", headers=me)).status_code == 200
    assert (await client.get(f"{REPORTS}/{report_id}/other.csv", headers=me)).status_code == 404
    listed = (await client.get(REPORTS, headers=me)).json()["data"]
    assert [r["id"] for r in listed] == [report_id]

    other = await user(client, runtime, "other@example.com")
    assert (await client.get(f"{REPORTS}/{report_id}", headers=other)).status_code == 404
    assert (await client.get(f"{REPORTS}/{report_id}/form8949.csv", headers=other)).status_code == 404
    assert (await client.get(REPORTS, headers=other)).json()["data"] == []


async def test_a_bad_report_request_names_the_field(client: httpx.AsyncClient, runtime: Runtime) -> None:
    me = await user(client, runtime, "fields@example.com")
    bad_method = await client.post(REPORTS, json={"year": 2024, "method": "avg"}, headers=me)
    assert bad_method.status_code == 422 and bad_method.json()["detail"][0]["loc"] == ["body", "method"]
    bad_year = await client.post(REPORTS, json={"year": 1999}, headers=me)
    assert bad_year.status_code == 422 and bad_year.json()["detail"][0]["loc"] == ["body", "year"]


async def test_a_coinbase_export_is_found_from_its_header_and_imports_once(client: httpx.AsyncClient,
                                                                          runtime: Runtime) -> None:
    from tax.test_layouts import COINBASE

    me = await user(client, runtime, "coinbase@example.com")
    first = (await upload(client, me, COINBASE)).json()
    assert (first["layout"], first["rows_read"], first["imported"], first["duplicates"]) == ("coinbase", 7, 6, 0)
    assert [r["line"] for r in first["rejected"]] == [11] and [i["line"] for i in first["ignored"]] == [10]
    again = (await upload(client, me, COINBASE)).json()
    assert (again["imported"], again["duplicates"]) == (0, 6)
    owner = await runtime.services.accounts.find_user("coinbase@example.com")
    assert owner is not None and len(await runtime.services.tax.transactions(owner.id)) == 6
