"""htsget 1.3: which bytes of a BAM/CRAM/VCF/BCF file answer a region query (see ``ranges``)."""
