#!/usr/bin/env bash
# Java models: JDK 17, Debian's weka (the legacy example), JPype in the venv, meshserve's Java API
# jar, the example jars (javac --release 17) and the trained Weka example. Re-runs skip what is done.
set -euo pipefail
cd "$MESHSERVE_ROOT"
WEKA_JAR=/usr/share/java/weka.jar

bash scripts/apt-install.sh openjdk-17-jdk-headless weka libsvm-java

for tool in java javac; do
    version=$("$tool" -version 2>&1 | head -1)
    if ! grep -qE '"?(1[7-9]|[2-9][0-9])[."]' <<<"$version" && ! grep -qE "$tool (1[7-9]|[2-9][0-9])" <<<"$version"; then
        echo "meshserve needs $tool 17 or newer; found: $version" >&2
        exit 1
    fi
done

if ! "$PY" -c "import jpype" 2>/dev/null; then
    echo "    pip install jpype1"
    "$PY" -m pip install -q "jpype1>=1.5"
fi

# build_jar JAR CLASSPATH SOURCE_DIR: compile every .java under SOURCE_DIR into JAR when a source
# is newer than the jar (or the jar is missing).
build_jar() {
    local jar=$1 classpath=$2 sources=$3
    if [ -f "$jar" ] && [ -z "$(find "$sources" -name '*.java' -newer "$jar" | head -1)" ]; then
        return 0
    fi
    echo "    javac --release 17: $jar"
    local classes
    classes=$(mktemp -d)
    find "$sources" -name '*.java' >"$classes/sources.txt"
    javac --release 17 -Xlint:-options -nowarn -encoding UTF-8 -cp "$classpath" -d "$classes" @"$classes/sources.txt"
    rm "$classes/sources.txt"
    mkdir -p "$(dirname "$jar")"
    jar --create --file "$jar.tmp" -C "$classes" .
    mv "$jar.tmp" "$jar"
    rm -rf "$classes"
}

API_JAR=adapters/java/build/meshserve-model-api.jar
build_jar "$API_JAR" "" adapters/java/src
build_jar examples/java_loan_default/build/loan-default.jar "$API_JAR" examples/java_loan_default/src
build_jar examples/java_weka_j48/build/weka-iris-tools.jar "$WEKA_JAR" examples/java_weka_j48/train
build_jar bench/java/build/weka-timing-loop.jar "$WEKA_JAR" bench/java

# Train the Weka example with Weka itself when its model files are missing or older than the data.
weka_dir=examples/java_weka_j48
if [ ! -f "$weka_dir/j48.model" ] || [ ! -f "$weka_dir/header.model" ] \
        || [ "$weka_dir/data/iris.arff" -nt "$weka_dir/j48.model" ] \
        || [ "$weka_dir/build/weka-iris-tools.jar" -nt "$weka_dir/j48.model" ]; then
    echo "    training Weka J48 on $weka_dir/data/iris.arff"
    java -cp "$WEKA_JAR:$weka_dir/build/weka-iris-tools.jar" TrainJ48 "$weka_dir/data/iris.arff" "$weka_dir" >/dev/null
fi
