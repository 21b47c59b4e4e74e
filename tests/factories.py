"""factory_boy factories for registry records (tests only; services are tested separately)."""

from __future__ import annotations

import datetime as dt

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from registry import models as rm

PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    first_name = "Test"
    last_name = factory.Sequence(lambda n: f"User{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@hospital.test")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def role(self, create: bool, extracted: str | None, **kwargs: object) -> None:
        if extracted:
            self.groups.add(Group.objects.get(name=extracted))
        if create:
            self.save()


class ClinicalModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = rm.ClinicalModel

    slug = factory.Sequence(lambda n: f"model-{n}")
    name = factory.Sequence(lambda n: f"Test model {n}")
    summary = "Predicts a test outcome."
    intended_use = "Flags patients for review."
    intended_population = "Adults (18+) admitted to inpatient wards."
    intended_setting = "Adult inpatient wards"
    risk_tier = rm.RiskTier.MODERATE
    status = rm.ModelStatus.ACTIVE
    clinical_owner = factory.SubFactory(UserFactory)
    technical_owner = factory.SubFactory(UserFactory)
    contact = "ml-team@hospital.test"


class ModelVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = rm.ModelVersion

    model = factory.SubFactory(ClinicalModelFactory)
    version = factory.Sequence(lambda n: f"1.{n}.0")
    status = rm.VersionStatus.APPROVED
    artifact_uri = "s3://models/test/model.onnx"
    artifact_sha256 = "a" * 64
    training_data_source = "EHR extract"
    training_window_start = dt.date(2022, 1, 1)
    training_window_end = dt.date(2023, 12, 31)
    training_set_size = 10000
    label_definition = "Outcome within 48 hours."
    decision_thresholds = {"alert": 0.5}
    created_by = factory.SubFactory(UserFactory)


class FeatureSpecFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = rm.FeatureSpec

    version = factory.SubFactory(ModelVersionFactory)
    name = factory.Sequence(lambda n: f"feature_{n}")
    dtype = rm.FeatureType.NUMERIC
    min_value = 0.0
    max_value = 300.0


class SiteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = rm.Site
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"SITE{n}")
    name = factory.Sequence(lambda n: f"Hospital {n}")
