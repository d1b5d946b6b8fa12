# image, load: a reproducible OCI image (also a docker-archive) on disk, and the same image in the Docker Engine.


rule image:
    input:
        tar="build/rootfs/{image}/{release}/{variant}/{arch}/rootfs.tar",
    output:
        archive="build/oci/{image}/{release}/{variant}/{arch}.oci.tar",
        info="build/oci/{image}/{release}/{variant}/{arch}.json",
    params:
        meta=lambda w: image_plan(w).meta.to_dict(),
        code=code_hash("image"),
    log:
        "logs/image/{image}/{release}/{variant}/{arch}.log",
    resources:
        runtime=30,
        mem_mb=1024,
    cache: "omit-software"
    script:
        "../scripts/image.py"


# straight from rootfs.tar (docker load of an uncompressed docker-archive stream, or docker import): the
# engine gets the image while rule image compresses it; the summary checks both have the same image ID
rule load:
    input:
        rootfs="build/rootfs/{image}/{release}/{variant}/{arch}/rootfs.tar",
        rootfs_info="build/rootfs/{image}/{release}/{variant}/{arch}/rootfs.json",
    output:
        record="build/engine/{image}/{release}/{variant}/{arch}.json",
    params:
        meta=lambda w: image_plan(w).meta.to_dict(),
        method=lambda w: image_plan(w).load,
        code=code_hash("load"),
    log:
        "logs/load/{image}/{release}/{variant}/{arch}.log",
    script:
        "../scripts/load.py"
