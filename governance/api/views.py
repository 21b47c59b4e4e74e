"""Release API: list, propose, change, submit, sign, reject, withdraw, deploy, roll back and
attach evidence, so a hospital's release pipeline can drive change control. Every write is
input serializer → service → output serializer; services' ``ValidationError`` becomes a 400
with field messages and ``PermissionDenied`` a 403 (``accounts.api.exception_handler``)."""

from __future__ import annotations

import django_filters
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from governance import deploy, releases, signing
from governance.api import serializers as s
from governance.models import Release, ReleaseKind, ReleaseStatus
from registry.api.serializers import ReasonSerializer, validate_input
from registry.api.views import Pagination

CHANGE = {"POST": ["governance.change_release"]}
SIGN = {"POST": ["governance.sign_release"]}


class ReleaseFilter(django_filters.FilterSet):
    model = django_filters.CharFilter(field_name="model__slug", help_text="Model slug.")
    status = django_filters.MultipleChoiceFilter(choices=ReleaseStatus.choices)
    kind = django_filters.MultipleChoiceFilter(choices=ReleaseKind.choices)
    awaiting = django_filters.BooleanFilter(
        method="filter_awaiting", help_text="Only releases still needing a signature my roles fill."
    )

    class Meta:
        model = Release
        fields: list[str] = []

    def filter_awaiting(self, queryset: QuerySet[Release], name: str, value: bool) -> QuerySet:
        if not value:
            return queryset
        user = self.request.user
        held = set(user.groups.values_list("name", flat=True))
        keep = [
            r.pk
            for r in queryset.filter(status__in=(ReleaseStatus.SUBMITTED, ReleaseStatus.IN_REVIEW))
            .exclude(author=user)
            .select_related("model")
            if any(role in held for role, _ in releases.missing_signers(r))
        ]
        return queryset.filter(pk__in=keep)


class ReleaseViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,  # type: ignore[type-arg]
):
    """Releases, newest first, each with its evidence and signature manifestations."""

    serializer_class = s.ReleaseSerializer
    pagination_class = Pagination
    filterset_class = ReleaseFilter
    lookup_value_regex = r"\d+"
    parser_classes = [JSONParser, MultiPartParser, FormParser]
    required_perms = {
        "read": ["governance.view_release"],
        "POST": ["governance.add_release"],
        "PATCH": ["governance.change_release"],
    }

    def get_queryset(self) -> QuerySet[Release]:
        return (
            Release.objects.select_related("model", "version", "author")
            .prefetch_related("sites", "files", "deployments")
            .order_by("-created_at", "-pk")
        )

    def _out(self, release: Release, code: int = status.HTTP_200_OK) -> Response:
        release = self.get_queryset().get(pk=release.pk)
        return Response(self.get_serializer(release).data, status=code)

    @extend_schema(request=s.ReleaseInputSerializer, responses={201: s.ReleaseSerializer})
    def create(self, request: Request) -> Response:
        """Propose a change (a draft). Roll back with ``POST /releases/rollback/``."""
        body = validate_input(s.ReleaseInputSerializer, request.data)
        release = releases.release_create(actor=request.user, **body)
        return self._out(release, status.HTTP_201_CREATED)

    @extend_schema(request=s.ReleaseChangeSerializer, responses=s.ReleaseSerializer)
    def partial_update(self, request: Request, pk: str) -> Response:
        """Change the content. After submission this voids every signature (visibly) and
        sends the release back to review; ``reason`` is then required."""
        body = validate_input(s.ReleaseChangeSerializer, request.data)
        reason = body.pop("reason", "")
        release = releases.release_update(
            actor=request.user, release=self.get_object(), changes=body, reason=reason
        )
        return self._out(release)

    @extend_schema(request=s.CredentialsSerializer, responses=s.ReleaseSerializer)
    @action(detail=True, methods=["post"], required_perms=CHANGE)
    def submit(self, request: Request, pk: str) -> Response:
        """The author submits, signing authorship with user name and password."""
        body = validate_input(s.CredentialsSerializer, request.data)
        release = releases.release_submit(
            actor=request.user, release=self.get_object(), username=body["username"],
            password=body["password"], require_username=True,
        )  # fmt: skip
        return self._out(release)

    @extend_schema(request=s.CredentialsSerializer, responses=s.ReleaseSerializer)
    @action(detail=True, methods=["post"], required_perms=SIGN)
    def sign(self, request: Request, pk: str) -> Response:
        """Sign with user name and password (21 CFR Part 11). The signature fills the first
        required role you hold; the last one approves the release; a rollback then deploys."""
        body = validate_input(s.CredentialsSerializer, request.data)
        release = self.get_object()
        signing.release_sign(
            actor=request.user, release=release, username=body["username"],
            password=body["password"], require_username=True,
        )  # fmt: skip
        return self._out(release)

    @extend_schema(request=ReasonSerializer, responses=s.ReleaseSerializer)
    @action(detail=True, methods=["post"], required_perms=SIGN)
    def reject(self, request: Request, pk: str) -> Response:
        body = validate_input(ReasonSerializer, request.data)
        release = releases.release_reject(
            actor=request.user, release=self.get_object(), reason=body["reason"]
        )
        return self._out(release)

    @extend_schema(request=ReasonSerializer, responses=s.ReleaseSerializer)
    @action(detail=True, methods=["post"], required_perms=CHANGE)
    def withdraw(self, request: Request, pk: str) -> Response:
        body = validate_input(ReasonSerializer, request.data)
        release = releases.release_withdraw(
            actor=request.user, release=self.get_object(), reason=body["reason"]
        )
        return self._out(release)

    @extend_schema(request=None, responses=s.ReleaseSerializer)
    @action(detail=True, methods=["post"], required_perms={"POST": ["governance.deploy_release"]})
    def deploy(self, request: Request, pk: str) -> Response:
        """Deploy an approved, fully signed release at its sites: the gate applies it from
        the next request."""
        release = deploy.release_deploy(actor=request.user, release=self.get_object())
        return self._out(release)

    @extend_schema(request=s.RollbackInputSerializer, responses={201: s.ReleaseSerializer})
    @action(detail=False, methods=["post"], required_perms={"POST": ["governance.add_release"]})
    def rollback(self, request: Request) -> Response:
        """Propose a rollback: restores the previous deployment's version, recalibration,
        thresholds and deferral policy at each site once one medical director signs."""
        body = validate_input(s.RollbackInputSerializer, request.data)
        origin = {"incident": body["incident"]} if body.get("incident") else {}
        release = releases.rollback_propose(
            actor=request.user, model=body["model"], sites=body["sites"],
            rationale=body["rationale"], origin=origin,
        )  # fmt: skip
        return self._out(release, status.HTTP_201_CREATED)

    @extend_schema(request=s.EvidenceUploadSerializer, responses={201: s.ReleaseSerializer})
    @action(detail=True, methods=["post"], required_perms=CHANGE)
    def evidence(self, request: Request, pk: str) -> Response:
        """Attach a file (stored with its sha256). A ``validation_set`` is evaluated: overall
        and subgroup discrimination and calibration, regression check, backtests."""
        body = validate_input(s.EvidenceUploadSerializer, request.data)
        upload, release = body["file"], self.get_object()
        data = upload.read()
        if body["kind"] == "validation_set":
            release = releases.validation_set_add(
                actor=request.user, release=release, name=upload.name, data=data
            )
        else:
            releases.evidence_file_add(
                actor=request.user, release=release, kind=body["kind"], name=upload.name,
                data=data, content_type=getattr(upload, "content_type", "") or "",
            )  # fmt: skip
        return self._out(release, status.HTTP_201_CREATED)
