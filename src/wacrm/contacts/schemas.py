"""Contacts and tags on the wire. Responses are built field by field from rows."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from wacrm.contacts.repository import TagCount
from wacrm.contacts.service import ContactView
from wacrm.contacts.tags import MAX_TAGS_PER_REQUEST

_TAG_NAMES = (
    "Tag names: trimmed, 1-64 characters, no control characters. Matched case- and "
    "accent-insensitively (`Café` = `cafe` = `CAFE`); missing tags are created."
)


class ContactCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone: str = Field(
        max_length=64,
        description="Phone number with its country code, e.g. `+1 (415) 555-0123`; stored "
        "as E.164 (`+14155550123`). A number without a country code is a 400.",
    )
    name: str | None = Field(
        None, max_length=1000, description="Name you know the contact by (up to 200 characters)"
    )
    email: str | None = Field(None, max_length=1000, description="Email address")
    company: str | None = Field(None, max_length=1000, description="Company (up to 200 chars)")
    tags: list[str] = Field(
        default_factory=list, max_length=MAX_TAGS_PER_REQUEST, description=_TAG_NAMES
    )


class ContactUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=1000, description="New name; null clears it")
    email: str | None = Field(None, max_length=1000, description="New email; null clears it")
    company: str | None = Field(None, max_length=1000, description="New company; null clears it")
    tags: list[str] | None = Field(
        None,
        max_length=MAX_TAGS_PER_REQUEST,
        description="Replaces the contact's whole tag set (`[]` removes all). " + _TAG_NAMES,
    )
    phone: str | None = Field(
        None,
        max_length=64,
        description="Not changeable (a contact is its number): sending it is a 400",
    )


class ContactTagsChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    add: list[str] = Field(
        default_factory=list,
        max_length=MAX_TAGS_PER_REQUEST,
        description="Tags to add. " + _TAG_NAMES,
    )
    remove: list[str] = Field(
        default_factory=list,
        max_length=MAX_TAGS_PER_REQUEST,
        description="Tags to remove (absent ones are ignored). A name in both lists is a 400.",
    )


class ContactOut(BaseModel):
    id: uuid.UUID = Field(description="Contact id")
    phone: str = Field(description="E.164 phone number")
    name: str | None = Field(description="Name you gave the contact")
    profile_name: str | None = Field(description="Name the contact uses on WhatsApp")
    email: str | None = Field(description="Email address")
    company: str | None = Field(description="Company")
    tags: list[str] = Field(description="Tag names, sorted case- and accent-insensitively")
    created_at: datetime = Field(description="When the contact was created (UTC)")
    updated_at: datetime = Field(description="When it last changed (UTC)")

    @classmethod
    def of(cls, view: ContactView) -> ContactOut:
        contact = view.contact
        return cls(
            id=contact.id,
            phone=contact.phone,
            name=contact.name,
            profile_name=contact.profile_name,
            email=contact.email,
            company=contact.company,
            tags=list(view.tags),
            created_at=contact.created_at,
            updated_at=contact.updated_at,
        )


class TagOut(BaseModel):
    id: uuid.UUID = Field(description="Tag id")
    name: str = Field(description="Tag name, as first written")
    contact_count: int = Field(description="How many contacts carry it")
    created_at: datetime = Field(description="When the tag was created (UTC)")

    @classmethod
    def of(cls, tag: TagCount) -> TagOut:
        return cls(
            id=tag.id, name=tag.name, contact_count=tag.contact_count, created_at=tag.created_at
        )
