# image -> load: a reproducible OCI image (also a docker-archive) on disk, then into the Docker Engine.


rule image:
    input:
        tar="build/rootfs/{image}/{release}/{variant}/{arch}/rootfs.tar",
    output:
        archive="build/oci/{image}/{release}/{variant}/{arch}.oci.tar",
        info="build/oci/{image}/{release}/{variant}/{arch}.json",
    params:
        meta=lambda w: image_plan(w).meta.to_dict(),
        code=bfconfig.code_hash("oci.py", "spec.py"),
    log:
        "logs/image/{image}/{release}/{variant}/{arch}.log",
    resources:
        runtime=30,
        mem_mb=1024,
    cache: "omit-software"
    script:
        "../scripts/image.py"


rule load:
    input:
        archive="build/oci/{image}/{release}/{variant}/{arch}.oci.tar",
        info="build/oci/{image}/{release}/{variant}/{arch}.json",
        rootfs="build/rootfs/{image}/{release}/{variant}/{arch}/rootfs.tar",
    output:
        record="build/engine/{image}/{release}/{variant}/{arch}.json",
    params:
        meta=lambda w: image_plan(w).meta.to_dict(),
        method=lambda w: image_plan(w).load,
        code=bfconfig.code_hash("engine.py"),
    log:
        "logs/load/{image}/{release}/{variant}/{arch}.log",
    script:
        "../scripts/load.py"
