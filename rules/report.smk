# What `snakemake --report report.html` shows beside the files flagged in the stage files (the matrix is
# the smoke reports with their labels, rules/smoketest.smk; SBOMs and provenance, rules/bootstrap.smk):
# two charts. Captions are in rules/report/, next to the rules that name them; labels come from
# baseforge.report, read when the report is made.


rule report_sizes:
    input:
        images=paths.SUMMARY_JSON,
    output:
        svg=report(
            paths.REPORT_SIZES,
            caption="report/sizes.rst",
            category="3. Charts",
            labels={"chart": "image sizes"},
        ),
    log:
        "logs/report/sizes.log",
    localrule: True
    params:
        code=code_hash("report_sizes"),
    script:
        "../scripts/report_sizes.py"


# after the summary, i.e. after every job of the matrix has written its log
rule report_times:
    input:
        images=paths.SUMMARY_JSON,
    output:
        svg=report(
            paths.REPORT_TIMES,
            caption="report/build-time.rst",
            category="3. Charts",
            labels={"chart": "build time per rule"},
        ),
    log:
        "logs/report/build-time.log",
    localrule: True
    params:
        logs="logs",
        skip="logs/report",
        code=code_hash("report_times"),
    script:
        "../scripts/report_times.py"
