# Sum the `test result:` lines of a `cargo test` log into one closing line.
# Tests that print `skipped: ...` (e.g. no Limine install) pass in libtest's eyes; they are
# moved from passed to skipped here. Usage: awk -v status=N -f test-summary.awk LOG
/^test result: / {
    for (i = 1; i <= NF; i++) {
        n = $(i - 1) + 0
        if ($i ~ /^passed/) passed += n
        if ($i ~ /^failed/) failed += n
        if ($i ~ /^ignored/) ignored += n
    }
}
/^skipped: / { skipped++; print }
END {
    passed -= skipped
    if (status != 0 && failed == 0)
        print "make test: cargo test exited with status " status " (a build error?), see build/test.log"
    printf "summary: %d passed, %d failed, %d skipped\n", passed, failed, skipped + ignored
}
