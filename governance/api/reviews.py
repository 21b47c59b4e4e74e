"""Review meetings API, read-only: the meetings of every model (the list without packs, the
detail with its frozen pack and minutes) and the action items they created, filterable by
model, status, owner and lateness. Writes happen on the review pages.

Included under ``/api/v1/``: ``review-meeting-list`` / ``review-meeting-detail`` at
``review-meetings/`` and ``review-action-list`` / ``review-action-detail`` at
``review-actions/``.
"""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import QuerySet
from django.utils import timezone
from rest_framework import serializers, viewsets
from rest_framework.routers import SimpleRouter

from governance.models import ActionItem, ReviewMeeting
from registry.api.views import Pagination


class ActionItemSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    model = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True)
    overdue = serializers.SerializerMethodField(help_text="Open and past its due date.")

    class Meta:
        model = ActionItem
        fields = [
            "id",
            "meeting",
            "model",
            "text",
            "owner",
            "due",
            "status",
            "overdue",
            "closed_at",
            "closed_note",
            "overdue_flagged_at",
        ]
        read_only_fields = fields

    def get_overdue(self, item: ActionItem) -> bool:
        return item.status == ActionItem.Status.OPEN and item.due < timezone.now().date()


class ReviewMeetingSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    model = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    recorded_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    held = serializers.SerializerMethodField()

    class Meta:
        model = ReviewMeeting
        fields = [
            "id",
            "model",
            "scheduled_for",
            "period_start",
            "pack_generated_at",
            "held",
            "held_at",
            "recorded_by",
            "decisions",
        ]
        read_only_fields = fields

    def get_held(self, meeting: ReviewMeeting) -> bool:
        return meeting.held_at is not None


class ReviewMeetingDetailSerializer(ReviewMeetingSerializer):
    actions = ActionItemSerializer(many=True, read_only=True)
    pack = serializers.JSONField(read_only=True, help_text="Aggregates only; frozen when held.")

    class Meta(ReviewMeetingSerializer.Meta):
        fields = [*ReviewMeetingSerializer.Meta.fields, "attendees", "minutes", "pack", "actions"]
        read_only_fields = fields


class MeetingFilter(django_filters.FilterSet):
    model = django_filters.CharFilter(field_name="model__slug", help_text="Model slug.")
    held = django_filters.BooleanFilter(field_name="held_at", lookup_expr="isnull", exclude=True)

    class Meta:
        model = ReviewMeeting
        fields: list[str] = []


class ActionFilter(django_filters.FilterSet):
    model = django_filters.CharFilter(field_name="model__slug", help_text="Model slug.")
    owner = django_filters.CharFilter(field_name="owner__username", help_text="Username.")
    status = django_filters.ChoiceFilter(choices=ActionItem.Status.choices)
    overdue = django_filters.BooleanFilter(method="filter_overdue", help_text="Open and late.")

    class Meta:
        model = ActionItem
        fields: list[str] = []

    def filter_overdue(self, rows: QuerySet[ActionItem], name: str, value: Any) -> Any:
        late = {"status": ActionItem.Status.OPEN, "due__lt": timezone.now().date()}
        return rows.filter(**late) if value else rows.exclude(**late)


class ReviewMeetingViewSet(viewsets.ReadOnlyModelViewSet):  # type: ignore[type-arg]
    """Review meetings, latest first."""

    pagination_class = Pagination
    filterset_class = MeetingFilter
    required_perms = {"read": ["governance.view_reviewmeeting"]}

    def get_queryset(self) -> QuerySet[ReviewMeeting]:
        rows = ReviewMeeting.objects.select_related("model", "recorded_by")
        if self.action == "retrieve":
            rows = rows.prefetch_related("actions__owner", "actions__model")
        return rows.order_by("-scheduled_for", "-pk")

    def get_serializer_class(self) -> type[serializers.BaseSerializer]:  # type: ignore[type-arg]
        if self.action == "retrieve":
            return ReviewMeetingDetailSerializer
        return ReviewMeetingSerializer


class ActionItemViewSet(viewsets.ReadOnlyModelViewSet):  # type: ignore[type-arg]
    """Action items of review meetings, soonest due first."""

    serializer_class = ActionItemSerializer
    pagination_class = Pagination
    filterset_class = ActionFilter
    required_perms = {"read": ["governance.view_actionitem"]}

    def get_queryset(self) -> QuerySet[ActionItem]:
        return ActionItem.objects.select_related("model", "owner").order_by("due", "pk")


router = SimpleRouter()
router.register("review-meetings", ReviewMeetingViewSet, basename="review-meeting")
router.register("review-actions", ActionItemViewSet, basename="review-action")

urlpatterns = router.urls
