"""Guard rails for governed models (those with django-simple-history).

simple-history records ``save()`` and ``delete()``, but not ``QuerySet.update()`` nor the bulk
methods, which write without signals. On a governed model those are refused, so no change can
escape the record's history; a service that needs a mass change saves each row.
"""

from __future__ import annotations

from typing import Any

from django.db import models


class UnrecordedWriteError(TypeError):
    pass


class GovernedQuerySet(models.QuerySet[Any]):
    def update(self, **kwargs: Any) -> int:
        raise UnrecordedWriteError(
            f"{self.model.__name__}: QuerySet.update() bypasses history; save each row through "
            "its service instead"
        )

    def bulk_update(self, objs: Any, fields: Any, batch_size: int | None = None) -> int:
        raise UnrecordedWriteError(f"{self.model.__name__}: bulk_update() bypasses history")

    def bulk_create(self, objs: Any, *args: Any, **kwargs: Any) -> list[Any]:
        raise UnrecordedWriteError(f"{self.model.__name__}: bulk_create() bypasses history")

    def update_or_create(self, *args: Any, **kwargs: Any) -> Any:
        # Uses save() underneath, so history is kept; allowed.
        return super().update_or_create(*args, **kwargs)


GovernedManager = models.Manager.from_queryset(GovernedQuerySet)
