# image, load: a reproducible OCI image (also a docker-archive) on disk, and the same image in the Docker Engine.


rule image:
    input:
        tar=paths.cell(paths.ROOTFS),
    output:
        archive=paths.cell(paths.OCI),
        info=paths.cell(paths.OCI_INFO),
    log:
        "logs/image/{image}/{release}/{variant}/{arch}.log",
    cache: "omit-software"
    # the gzip of the layer deflates blocks in parallel (the bytes do not depend on how many threads); two
    # leave the other cores to load, which streams the same rootfs.tar to the engine meanwhile
    # (--set-threads image=N for more)
    threads: 2
    resources:
        runtime=30,
        mem_mb=1024,
    params:
        meta=lambda w: image_plan(w).meta.to_dict(),
        code=code_hash("image"),
    script:
        "../scripts/image.py"


# straight from rootfs.tar (docker load of an uncompressed docker-archive stream, or docker import): the
# engine gets the image while rule image compresses it; the summary checks both have the same image ID
rule load:
    input:
        rootfs=paths.cell(paths.ROOTFS),
        rootfs_info=paths.cell(paths.ROOTFS_INFO),
    output:
        record=paths.cell(paths.ENGINE),
    log:
        "logs/load/{image}/{release}/{variant}/{arch}.log",
    localrule: ENGINE_LOCAL
    params:
        meta=lambda w: image_plan(w).meta.to_dict(),
        method=lambda w: image_plan(w).load,
        code=code_hash("load"),
    script:
        "../scripts/load.py"
