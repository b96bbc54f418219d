"""access: who may read which genomes, and which bytes of them a request is answered with.

Stage: access control. Clinicians and approved researchers read genomes over GA4GH htsget.
`principals` (who), `tokens` (bearer tokens, hashed at rest, and authentication), `grants`
(cohorts: genomes, a patient group, a controller's genomes, optionally one region), `regions`
(`chr1:100-200` restrictions) and `decide` (`authorize`: may this principal read this genome or
region, and the audit of that decision; `still_allowed`, the live re-check of a signed URL) hold
the model; `htsget` turns a request of a principal granted the whole genome into byte ranges of
the stored file from its index. The web app (`wgsvault.serve`) puts these
together; this package never sees an HTTP request and never takes a path from one.

May use: codec (the one door to htslib), audit, catalog and the utilities. It is independent of
apply; serve and the CLI use it.
"""

from wgsvault.access.decide import NOT_FOUND, Decision, authorize, record_decision, still_allowed
from wgsvault.access.grants import KINDS, add_grant, cohort, list_grants, revoke_grant
from wgsvault.access.principals import ROLES, add_principal, disable_principal, list_principals
from wgsvault.access.regions import Region, parse_region
from wgsvault.access.tokens import (
    PREFIX_CHARS,
    TOKEN_PREFIX,
    Credential,
    Unauthenticated,
    authenticate,
    authenticate_token,
    bearer_token,
    issue_token,
    list_tokens,
    revoke_token,
    token_sha256,
)

__all__ = [
    "KINDS",
    "NOT_FOUND",
    "PREFIX_CHARS",
    "TOKEN_PREFIX",
    "Credential",
    "Decision",
    "Region",
    "Unauthenticated",
    "add_grant",
    "ROLES",
    "add_principal",
    "authenticate",
    "authenticate_token",
    "authorize",
    "bearer_token",
    "cohort",
    "disable_principal",
    "issue_token",
    "list_grants",
    "list_principals",
    "list_tokens",
    "parse_region",
    "record_decision",
    "revoke_grant",
    "revoke_token",
    "still_allowed",
    "token_sha256",
]
