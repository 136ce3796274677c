"""One ingest batch holding a one-person VCF, its BCF copy and a file of other people.

Reported: the batch failed with ``UNIQUE constraint failed: beacon_individuals.dataset_id, sample_number``
after its files were published, with and without pseudonyms (``datasets create --keep-sample-names``).  The
first person got Beacon sample number 0, and the next new person was numbered as if the dataset had none
(``max or -1`` took 0 for "no one yet").  A steward expects the batch to publish whole, with each person
one Beacon individual: the person of the VCF and of its BCF copy is the same individual, with one number.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pysam import bcftools
from sqlalchemy import select

from genoshare.beacon.people import PeopleCache
from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.ingest.deidentify import Pseudonymiser
from genoshare.node import Node, build_ingestor
from genoshare.store.beacon_tables import BeaconBiosample, BeaconIndividual, BeaconVariantIndex
from genoshare.store.models import DataObject, ObjectParticipant, Participant

from processes import run_cli

HEADER = """##fileformat=VCFv4.3
##contig=<ID=20,length=100000>
##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t{samples}
"""


def vcf(path: Path, genotypes: dict[str, list[str]]) -> Path:
    """An uncompressed VCF of three sites on contig 20, one column per sample (ingest bgzips it)."""
    lines = [HEADER.format(samples="\t".join(genotypes))]
    for site, position in enumerate((1000, 2000, 3000)):
        calls = "\t".join(calls[site] for calls in genotypes.values())
        lines.append(f"20\t{position}\t.\tA\tG\t50\tPASS\t.\tGT\t{calls}\n")
    path.write_text("".join(lines))
    return path


@pytest.mark.parametrize(
    ("pseudonymise", "cli"), [(True, False), (False, True)], ids=["pseudonyms-Ingestor", "keep-sample-names-cli"]
)
def test_a_vcf_and_its_bcf_copy_publish_with_other_people(
    node: Node, tmp_path: Path, pseudonymise: bool, cli: bool
) -> None:
    DatasetService(node.database).create(
        NewDataset(
            id="study",
            title="Study",
            custodian="Example Hospital",
            access_level="controlled",
            duo_codes=["GRU"],
            pseudonymise=pseudonymise,
        )
    )
    solo = vcf(tmp_path / "solo.vcf", {"SOLO1": ["0/1", "1/1", "0/0"]})
    solo_bcf = tmp_path / "solo.bcf"
    bcftools.view("-Ob", "-o", str(solo_bcf), str(solo), catch_stdout=False)
    others = vcf(tmp_path / "others.vcf", {"OTHER1": ["0/0", "0/1", "1/1"], "OTHER2": ["1/1", "0/0", "0/1"]})

    batch = [solo, solo_bcf, others]
    if cli:
        done = run_cli(
            "ingest",
            "study",
            *map(str, batch),
            "--data-dir",
            str(node.settings.data_dir),
            env={"GENOSHARE_DATABASE_URL": node.settings.database_url},
        )
        assert done.returncode == 0, done.stdout + done.stderr
    else:
        assert len(build_ingestor(node).ingest("study", batch).published) == 3

    secret = Pseudonymiser.load_or_create(node.settings.keys_dir / "pseudonym.secret")
    stored = {name: secret.pseudonym("study", name) if pseudonymise else name for name in ("SOLO1", "OTHER1", "OTHER2")}
    with node.database.sessions() as session:
        objects = {row.name: row.id for row in session.scalars(select(DataObject))}
        assert set(objects) == {"solo.vcf.gz", "solo.bcf", "others.vcf.gz"}
        # Each person one individual with one number of their own, and one default biosample.
        individuals = session.execute(select(BeaconIndividual.pseudonym, BeaconIndividual.sample_number)).all()
        assert sorted(name for name, _ in individuals) == sorted(stored.values())
        assert len({number for _, number in individuals}) == 3
        biosamples = session.scalars(select(BeaconBiosample.biosample_id)).all()
        assert sorted(biosamples) == sorted(f"{name}-S1" for name in stored.values())
        # The VCF and its BCF copy hold the same participant, and every variant file is in the Beacon index.
        participants = session.execute(select(Participant.source_key, Participant.pseudonym)).all()
        assert sorted(participants) == sorted((secret.source_key("study", name), kept) for name, kept in stored.items())
        holders = {
            object_id: participant
            for object_id, participant in session.execute(
                select(ObjectParticipant.object_id, ObjectParticipant.participant_id).where(
                    ObjectParticipant.object_id.in_([objects["solo.vcf.gz"], objects["solo.bcf"]])
                )
            )
        }
        assert len(holders) == 2 and len(set(holders.values())) == 1
        indexed = session.execute(select(BeaconVariantIndex.object_id, BeaconVariantIndex.n_samples)).all()
        assert dict(indexed) == {objects["solo.vcf.gz"]: 1, objects["solo.bcf"]: 1, objects["others.vcf.gz"]: 2}
    # What Beacon answers from: three people, each under their own number.
    people = PeopleCache(node.database).get("study")
    assert set(people.by_id) == set(stored.values()) and len(people.active) == 3
