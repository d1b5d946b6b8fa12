# bootstrap -> pack: a raw rootfs per (image, release, arch, bootstrap variant), then a normalized
# rootfs.tar per variant. Both outputs are single files so the between-workflow cache keeps them whole.


rule bootstrap:
    input:
        unpack(raw_parent),
    output:
        tar=paths.RAW,
    log:
        "logs/bootstrap/{image}/{release}/{arch}/{raw}.log",
    cache: "omit-software"
    resources:
        runtime=60,
        mem_mb=2048,
    params:
        cell=raw_cell,
        # with the plugins this cell uses, not the whole package: adding or changing another bootstrapper
        # must not rebuild (or miss the cache of) every rootfs
        code=lambda w: code_hash("bootstrap", raw_cell(w)),
    script:
        "../scripts/bootstrap.py"


rule pack:
    input:
        raw=raw_tar,
    output:
        tar=paths.cell(paths.ROOTFS),
        manifest=paths.cell(paths.MANIFEST),
        info=paths.cell(paths.ROOTFS_INFO),
    log:
        "logs/pack/{image}/{release}/{variant}/{arch}.log",
    cache: "omit-software"
    resources:
        runtime=30,
        mem_mb=1024,
    params:
        epoch=lambda w: image_plan(w).cell.epoch,
        slim=lambda w: image_plan(w).cell.slim,
        family=lambda w: image_plan(w).family,
        cell=lambda w: cell_path(w),
        code=code_hash("pack"),
    script:
        "../scripts/pack.py"


rule sbom:
    input:
        tar=paths.cell(paths.ROOTFS),
        info=paths.cell(paths.ROOTFS_INFO),
    output:
        sbom=report(
            paths.cell(paths.SBOM),
            caption="report/sbom.rst",
            category="2. SBOM and provenance",
            labels=lambda w: bfreport.document_labels(cell_path(w), "SBOM (SPDX 2.3)"),
        ),
        provenance=report(
            paths.cell(paths.PROVENANCE),
            caption="report/provenance.rst",
            category="2. SBOM and provenance",
            labels=lambda w: bfreport.document_labels(cell_path(w), "provenance"),
        ),
    log:
        "logs/sbom/{image}/{release}/{variant}/{arch}.log",
    cache: "omit-software"
    localrule: True
    params:
        plan=lambda w: image_plan(w).to_dict(),
        code=lambda w: code_hash("sbom", image_plan(w).cell.to_dict()),
    script:
        "../scripts/sbom.py"
