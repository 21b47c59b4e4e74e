"""Governance tells incidents what its checks found (governance never imports incidents).

``checked`` is sent once per check run with ``kinds`` (the finding kinds that run covered) and
``findings`` (a list of ``governance.findings.Finding``, the ones true now). Incidents raises or
updates a governance-layer alert for each, and resolves its open alerts of those kinds that are
no longer found.
"""

from django.dispatch import Signal

checked = Signal()
