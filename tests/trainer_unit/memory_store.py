"""An S3 prefix in memory, with S3's conditional put: what the study's journal needs of
`ObjectStore`, for the search's unit tests."""

from __future__ import annotations

from mlcycle_trainer.storage import S3Location


class MemoryStore:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.listings = 0

    def get(self, location: S3Location) -> bytes:
        return self.objects[location.key]

    def put_new(self, location: S3Location, data: bytes, content_type: str) -> bool:
        if location.key in self.objects:
            return False
        self.objects[location.key] = data
        return True

    def keys_after(self, prefix: S3Location, start_after: str = "") -> list[str]:
        self.listings += 1
        return sorted(key for key in self.objects
                      if key.startswith(prefix.key) and key > start_after)
