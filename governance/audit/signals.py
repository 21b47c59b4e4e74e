"""What the scheduled chain verification found, for the apps above the audit trail (which
imports none of them). Both are sent with ``verification`` (a ``ChainVerification``):

* ``chain_broken``: the chain failed verification (``broken_seq`` and ``reason`` say where);
* ``chain_verified``: it verified intact, so an alert about an earlier break may resolve.
"""

from django.dispatch import Signal

chain_broken = Signal()
chain_verified = Signal()
