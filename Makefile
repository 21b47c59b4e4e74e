# Everyday commands. The README's two commands are scripts/demo and scripts/test; these wrap them
# and the checks the CI and pre-commit run.

PY := .venv/bin/python

.PHONY: help install demo run test test-unit test-integration ci lint format migrations-check check-deploy

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 20

install:  ## create .venv and install Vigil with its dev extra (skipped if pyproject.toml is unchanged)
	scripts/install

demo:  ## migrate, load the demo data and serve on http://127.0.0.1:8000/
	scripts/demo

run: demo

test:  ## the whole suite: unit + e2e on SQLite, integration on PostgreSQL + Redis + Celery
	scripts/test

test-unit:  ## unit + e2e only (SQLite, eager Celery)
	scripts/test --unit

test-integration:  ## integration only (needs PostgreSQL and Redis, see README)
	scripts/test --integration

ci:  ## what CI runs (as root: installs and starts throwaway PostgreSQL and Redis)
	CI=true bash .ci/run

lint: install  ## ruff
	.venv/bin/ruff check .

format: install  ## ruff format
	.venv/bin/ruff format .

migrations-check: install  ## fail if a model change has no migration
	$(PY) manage.py makemigrations --check --dry-run

check-deploy: install  ## Django's deployment checklist on the production settings (dummy secret)
	env -u DEBUG VIGIL_ENV=production ALLOWED_HOSTS=vigil.example.org \
	    SECRET_KEY="$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(64))')" \
	    DATABASE_URL=postgres://vigil@localhost/vigil \
	    $(PY) manage.py check --deploy --fail-level WARNING
