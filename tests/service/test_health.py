from __future__ import annotations

import pytest

from tests.factories import make_lead


async def test_healthz_and_readyz_check_the_real_services(client):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ok", "database": "ok", "redis": "ok"}


@pytest.mark.usefixtures("district", "clean")
async def test_metrics_count_pushes_by_verdict(client, source_headers):
    def value(text: str, verdict: str) -> float:
        for line in text.splitlines():
            if line.startswith(f'quanzu_leads_pushed_total{{verdict="{verdict}"}}'):
                return float(line.split()[-1])
        return 0.0

    before = (await client.get("/metrics")).text
    lead = make_lead()
    await client.post("/api/v1/leads", json=lead, headers=source_headers)
    await client.post("/api/v1/leads", json=lead, headers=source_headers)
    await client.post("/api/v1/leads/batch", json={"leads": [make_lead(), make_lead(risk_level=0)]},
                      headers=source_headers)
    after = (await client.get("/metrics")).text
    assert value(after, "accepted") - value(before, "accepted") == 2
    assert value(after, "duplicate") - value(before, "duplicate") == 1
    assert value(after, "rejected") - value(before, "rejected") == 1


async def test_openapi_documents_the_lead_body(client):
    doc = (await client.get("/openapi.json")).json()
    body = doc["paths"]["/api/v1/leads"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/LeadIn"}
    lead = doc["components"]["schemas"]["LeadIn"]
    assert {"source", "source_id", "pushed_at", "subject", "location"} <= set(lead["properties"])
    assert "SubjectIn" in doc["components"]["schemas"]
