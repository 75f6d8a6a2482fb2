"""What an import did: counts for the summary, and the rejects file for the rows it refused."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from core.errors import CadenceError


class RejectsFile:
    """Writes each rejected row as one JSON line: ``{"line", "reason", "record"}``.

    The file is (re)created on the first reject, so it always describes the latest run.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._stream: IO[str] | None = None

    def write(self, line: int, reason: str, record: str) -> None:
        try:
            if self._stream is None:
                self._stream = self.path.open("w", encoding="utf-8")
            self._stream.write(
                json.dumps({"line": line, "reason": reason, "record": record}, ensure_ascii=False)
                + "\n"
            )
        except OSError as exc:
            raise self._unwritable(exc) from None
        self.count += 1

    def close(self) -> None:
        """Finish the file; with no rejects, remove one an earlier run left, which would
        otherwise describe rows this run imported."""
        if self._stream is not None:
            try:
                self._stream.close()  # a full disk often shows only now, writing the buffer
            except OSError as exc:
                raise self._unwritable(exc) from None
        elif self.path.is_file():
            self.path.unlink()

    def _unwritable(self, exc: OSError) -> CadenceError:
        return CadenceError(
            f"{self.path}: cannot write the rejects file ({exc.strerror}); "
            "free some space or pass --rejects with another path; "
            "rows committed so far are safe and a re-run skips them"
        )


@dataclass
class ImportReport:
    """Counts for one import; ``rejected`` rows are in the rejects file with their reasons."""

    kind: str
    source: str
    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    held: int = 0
    customers_created: int = 0
    erased: int = 0
    """Rows about customers who were erased, not stored. They are not rejects: the rejects
    file would keep a copy of what the erasure removed."""
    seconds: float = 0.0
    rejects_path: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def rows_per_second(self) -> float:
        return self.read / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "source": self.source,
            "read": self.read,
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            "held": self.held,
            "customers_created": self.customers_created,
            "erased": self.erased,
            "seconds": round(self.seconds, 3),
            "rejects": str(self.rejects_path) if self.rejected and self.rejects_path else None,
        }
