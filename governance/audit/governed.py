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

    def bulk_create_recorded(
        self, objs: list[Any], *, user: Any, reason: str, batch_size: int = 1000
    ) -> list[Any]:
        """The sanctioned bulk insert: the rows and their history records, in one transaction.

        Needs the database to return primary keys from a bulk insert (PostgreSQL; SQLite 3.35+).
        """
        from django.db import transaction
        from simple_history.utils import get_history_manager_for_model

        with transaction.atomic(savepoint=False):
            created = super().bulk_create(objs, batch_size=batch_size)
            if created and created[0].pk is None:
                raise UnrecordedWriteError("this database does not return ids from bulk inserts")
            get_history_manager_for_model(self.model).bulk_history_create(
                created, batch_size=batch_size, default_user=user, default_change_reason=reason
            )
        return created


GovernedManager = models.Manager.from_queryset(GovernedQuerySet)
