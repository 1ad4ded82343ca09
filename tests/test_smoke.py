from tests.helpers import create_account, create_key
from wacrm.api_keys.scopes import ALL_SCOPES


async def test_me_with_a_fresh_key(client, db):
    account = await create_account(db)
    key = await create_key(db, account.id)
    response = await client.get("/api/v1/me", headers=key.headers)
    assert response.status_code == 200
    body = response.json()["data"]
    assert body["account"] == {"id": str(account.id), "name": "Acme"}
    assert body["key"]["scopes"] == [s.value for s in ALL_SCOPES]
