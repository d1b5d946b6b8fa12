# Cluster execution: which rules run on the submit host.
# With an executor plugin (`--profile profiles/slurm`) every other rule (bootstrap, pack, image, app_image)
# is a cluster job, run rootless on a node. The engine rules stay on the submit host, next to the Docker
# Engine, unless the config says the nodes have one (engine: {on_nodes: true}); so does app_build (buildah
# builds as root). sbom and index are cheap:
# as cluster jobs they would cost more in queueing and status polling than the work itself.

if (config.get("engine") or {}).get("on_nodes"):

    localrules:
        all,
        sbom,
        index,

else:

    localrules:
        all,
        sbom,
        index,
        load,
        app_load,
        app_build,
        smoketest,
        smoketest_app,
        summary,
        push,
        push_app,
