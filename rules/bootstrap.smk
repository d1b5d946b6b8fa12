# bootstrap -> pack: a raw rootfs per (image, release, arch, bootstrap variant), then a normalized
# rootfs.tar per variant. Both outputs are single files so the between-workflow cache keeps them whole.


rule bootstrap:
    input:
        unpack(raw_parent),
    output:
        tar="build/raw/{image}/{release}/{arch}/{raw}.tar",
    params:
        cell=raw_cell,
        # the plugin this cell uses, not the whole package: adding or changing another bootstrapper
        # must not rebuild (or miss the cache of) every rootfs
        code=lambda w: bfconfig.code_hash("bootstrap/__init__.py", f"bootstrap/{raw_cell(w)['bootstrapper']}.py",
                                          "spec.py", "run.py", "pkgcache.py", "chrootless.py"),
    log:
        "logs/bootstrap/{image}/{release}/{arch}/{raw}.log",
    resources:
        runtime=60,
        mem_mb=2048,
    cache: "omit-software"
    script:
        "../scripts/bootstrap.py"


rule pack:
    input:
        raw=raw_tar,
    output:
        tar="build/rootfs/{image}/{release}/{variant}/{arch}/rootfs.tar",
        manifest="build/rootfs/{image}/{release}/{variant}/{arch}/manifest.tsv",
        info="build/rootfs/{image}/{release}/{variant}/{arch}/rootfs.json",
    params:
        epoch=lambda w: image_plan(w).cell.epoch,
        slim=lambda w: image_plan(w).cell.slim,
        family=lambda w: image_plan(w).family,
        cell=lambda w: cell_path(w),
        code=bfconfig.code_hash("pack.py", "manifest.py", "data"),
    log:
        "logs/pack/{image}/{release}/{variant}/{arch}.log",
    resources:
        runtime=30,
        mem_mb=1024,
    cache: "omit-software"
    script:
        "../scripts/pack.py"


rule sbom:
    input:
        tar="build/rootfs/{image}/{release}/{variant}/{arch}/rootfs.tar",
        info="build/rootfs/{image}/{release}/{variant}/{arch}/rootfs.json",
    output:
        sbom="build/rootfs/{image}/{release}/{variant}/{arch}/sbom.spdx.json",
        provenance="build/rootfs/{image}/{release}/{variant}/{arch}/provenance.json",
    params:
        plan=lambda w: image_plan(w).to_dict(),
        code=bfconfig.code_hash("manifest.py", "provenance.py"),
    log:
        "logs/sbom/{image}/{release}/{variant}/{arch}.log",
    cache: "omit-software"
    script:
        "../scripts/sbom.py"
