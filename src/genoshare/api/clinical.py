"""Clinical variant lookup over HTTP: ``GET /clinical/variants?variant=...`` (``genoshare.clinical.lookup``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from genoshare.api.deps import IdentityDep
from genoshare.clinical.lookup import ClinicalLookup

router = APIRouter(prefix="/clinical", tags=["Clinical"])


@router.get(
    "/variants",
    summary="What is known about a variant here, and who else has it",
    # The forms a variant may take are too many for a pattern worth publishing: a text this node cannot read
    # is a 400 saying which forms it reads, and why (an HGVS deletion needs a reference genome).
    responses={400: {"description": "Not a variant this node reads (the message says why)."}},
)
async def lookup_variant(
    request: Request,
    identity: IdentityDep,
    variant: Annotated[
        str,
        Query(
            min_length=1,
            max_length=1000,
            description="VCF coordinates (1-12345-A-G) or HGVS genomic (NC_000001.11:g.12345A>G).",
        ),
    ],
    assembly: Annotated[str, Query(max_length=64, description="Assembly of VCF coordinates.")] = "GRCh38",
) -> dict[str, Any]:
    """The gene, clinical significance and the node's counts of one variant.

    Significance comes from the annotation the steward loaded (with its source and date); counts per dataset
    at the granularity your passport allows, as the Beacon gives them.
    """
    lookup: ClinicalLookup = request.app.state.clinical
    return await run_in_threadpool(lookup.lookup, variant, identity, assembly)
