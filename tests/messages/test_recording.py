"""Recording Meta's answers: set-based (the statements don't grow with the batch), each
answer on its own message, status events only for sent and failed, and a message that is
no longer ``pending`` left alone."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, select, update

from tests.helpers import create_account
from wacrm.channels.service import add_sandbox_channel
from wacrm.conversations.threads import open_threads
from wacrm.events.service import EventBatch
from wacrm.messages.sending import Answer, message_row, record_answers
from wacrm.models import Event, Message, MessageStatus
from wacrm.whatsapp.client import MetaError, MetaOutcomeUnknown


async def _pending_messages(db, settings, count: int) -> list[Message]:
    account = await create_account(db)
    channel = await add_sandbox_channel(db, settings, account_id=account.id)
    numbers = {f"+1415555{n:04d}": None for n in range(count)}
    threads = await open_threads(
        db, account.id, numbers, channel_id=channel.id, source="api", events=EventBatch(account.id)
    )
    messages = [
        message_row(
            account_id=account.id,
            conversation_id=thread.conversation_id,
            contact_id=thread.contact_id,
            channel_id=channel.id,
            message_type="template",
            content={"template_name": "hello_world"},
            reply_to_wamid=None,
        )
        for thread in threads.values()
    ]
    db.add_all(messages)
    await db.commit()
    return messages


def _count_statements(db) -> list[str]:
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(db.get_bind(), "before_cursor_execute", count)
    return statements


async def test_each_answer_lands_on_its_message_and_only_pending_ones_move(db, settings):
    sent, refused, later, unknown, settled = await _pending_messages(db, settings, 5)
    await db.execute(
        update(Message).where(Message.id == settled.id).values(status=MessageStatus.FAILED.value)
    )
    await db.commit()
    answers = [
        (sent, Answer(wamid="wamid.sent")),
        (refused, Answer(refusal=MetaError("Undeliverable", code=131026, http_status=400))),
        (later, Answer(refusal=MetaError("Rate limit hit", code=130429, http_status=400))),
        (unknown, Answer(unknown=MetaOutcomeUnknown("no answer"))),
        (settled, Answer(wamid="wamid.late")),
    ]

    outcomes = await record_answers(db, settings, answers)
    await db.commit()

    assert [o.status for o in outcomes] == [
        MessageStatus.SENT,
        MessageStatus.FAILED,
        MessageStatus.RETRYING,
        MessageStatus.UNKNOWN,
        MessageStatus.SENT,  # what Meta said; the row keeps what it had
    ]
    rows = {
        m.id: m
        for m in (await db.execute(select(Message).execution_options(populate_existing=True)))
        .scalars()
        .all()
    }
    assert (rows[sent.id].status, rows[sent.id].wamid, rows[sent.id].attempts) == (
        "sent",
        "wamid.sent",
        1,
    )
    assert rows[refused.id].status == "failed"
    assert rows[refused.id].error["code"] == 131026
    assert rows[refused.id].failed_at is not None
    assert rows[later.id].status == "retrying"
    assert rows[later.id].next_attempt_at is not None
    assert rows[unknown.id].status == "unknown"
    assert rows[unknown.id].wamid is None
    assert (rows[settled.id].status, rows[settled.id].wamid) == ("failed", None)

    status_events = (
        (await db.execute(select(Event).where(Event.type == "message.status_updated")))
        .scalars()
        .all()
    )
    by_message = {e.data["message_id"]: e.data for e in status_events}
    assert set(by_message) == {str(sent.id), str(refused.id)}
    assert by_message[str(sent.id)]["wamid"] == "wamid.sent"
    assert by_message[str(sent.id)]["error"] is None
    assert by_message[str(refused.id)]["status"] == "failed"
    assert by_message[str(refused.id)]["error"]["code"] == 131026


async def test_recording_fifty_answers_takes_as_many_statements_as_recording_two(db, settings):
    messages = await _pending_messages(db, settings, 52)
    statements = _count_statements(db)

    await record_answers(
        db, settings, [(m, Answer(wamid=f"wamid.{n}")) for n, m in enumerate(messages[:2])]
    )
    two = len(statements)
    statements.clear()
    await record_answers(
        db, settings, [(m, Answer(wamid=f"wamid.{n}")) for n, m in enumerate(messages[2:], 2)]
    )
    fifty = len(statements)
    await db.commit()

    assert fifty == two
    sent = await db.scalar(select(Message.id).where(Message.status != "sent").limit(1))
    assert sent is None
