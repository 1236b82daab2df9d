#!/usr/bin/env bash
# Benchmarks of the push engine, on this machine, over loopback.
#
#   scripts/benchmark.sh [--update-docs] [micro] [compose]
#
# micro    runs the ignored test push_engine_timings (gzip rates, archive and
#          OCI layout pushes against a local docker-registry) in release mode.
# compose  starts the STS and engine stand-ins, builds three images of
#          200 MiB in all, then in each of BENCHMARK_ROUNDS rounds (3 by
#          default) starts an empty registry and times the push of the set
#          by the native path (examples/push_benchmark.rs), its re-push, a
#          native push at gzip level 1, and the push by skopeo and by
#          docker-compose v1. Last, it measures the
#          peak memory of a native push of an image with a 1 GiB layer.
#
# Without a part name both run. Each part prints Markdown. --update-docs also
# writes the compose results into docs/benchmarks.md, between the
# compose-push-results markers. Needs the packages of scripts/bootstrap.sh,
# jq and /usr/bin/time. Every service listens on 127.0.0.1 only and is
# stopped by the script; the compose part takes about 3 minutes on 2 cores
# after the build.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

readonly ECR_HOST="123456789012.dkr.ecr.us-east-1.amazonaws.com"
readonly DOCS="docs/benchmarks.md"
readonly BEGIN_MARKER="<!-- compose-push-results:begin -->"
readonly END_MARKER="<!-- compose-push-results:end -->"
# Sizes of the compose set in MiB: name, text layer, random layer.
readonly IMAGES=("web 48 24" "api 32 40" "worker 40 16")
readonly BIG_LAYER_MIB=1024
# Rounds of the compose set, each against a new registry.
readonly ROUNDS="${BENCHMARK_ROUNDS:-3}"
# Targets of the native path.
readonly TARGET_SKOPEO_RATIO=0.6
readonly TARGET_REPUSH_RATIO=0.05
readonly TARGET_PEAK_MIB=100

log() { printf 'benchmark: %s\n' "$*" >&2; }

run_micro() {
  cargo test --release --test distribution_benchmark -- --ignored --nocapture --test-threads=1 2>&1 |
    grep -E '^\|'
}

# Writes SIZE MiB of word-like text to PATH: lines of words drawn from a
# vocabulary with Zipf weights, which gzip -6 takes to about 38 %. A 4 MiB
# block is repeated, which deflate cannot see across its 32 KiB window.
write_text() {
  python3 - "$1" "$2" "$3" <<'PY'
import random
import sys

size = int(sys.argv[1]) << 20
rng = random.Random(sys.argv[2])
path = sys.argv[3]
letters = "abcdefghijklmnopqrstuvwxyz"
vocabulary = [
    "".join(rng.choice(letters) for _ in range(rng.randint(2, 10))) for _ in range(8000)
]
cumulative = []
total = 0.0
for rank in range(len(vocabulary)):
    total += 1.0 / (rank + 1)
    cumulative.append(total)
lines = []
length = 0
while length < 4 << 20:
    words = rng.choices(vocabulary, cum_weights=cumulative, k=rng.randint(6, 14))
    line = " ".join(words) + "\n"
    lines.append(line)
    length += len(line)
block = "".join(lines).encode()
with open(path, "wb") as file:
    written = 0
    while written < size:
        part = block[: size - written]
        file.write(part)
        written += len(part)
PY
}

# Prints seconds since the epoch with nanoseconds.
now() { date +%s.%N; }

# Prints the value of a Python expression.
calc() { python3 -c "print($1)"; }

# Appends VALUE to the measurements named NAME.
record() { result[$1]+="$2 "; }

# Prints the median, min or max of the measurements named NAME.
median() { calc "__import__('statistics').median([${result[$1]// /, }])"; }
lowest() { calc "min([${result[$1]// /, }])"; }
highest() { calc "max([${result[$1]// /, }])"; }

# Runs a command with the stand-ins' environment only, so no ambient
# profile, proxy or docker host reaches the tools. XDG_DATA_HOME and
# XDG_CACHE_HOME change per round, so that skopeo's blob info cache and
# the native digest cache start empty.
clean_env() {
  env -i \
    PATH="$PATH" \
    HOME="$work/home" \
    XDG_DATA_HOME="$data_home" \
    XDG_CACHE_HOME="$cache_home" \
    XDG_CONFIG_HOME="$work/home/.config" \
    XDG_RUNTIME_DIR="$work/home/run" \
    TMPDIR="$work/tmp" \
    NO_PROXY=127.0.0.1,localhost \
    no_proxy=127.0.0.1,localhost \
    AWS_EC2_METADATA_DISABLED=true \
    AWS_REGION="$(jq -r .region "$standins")" \
    AWS_ENDPOINT_URL="$(jq -r .awsEndpoint "$standins")" \
    AWS_ACCESS_KEY_ID="$(jq -r .accessKeyId "$standins")" \
    AWS_SECRET_ACCESS_KEY="$(jq -r .secretAccessKey "$standins")" \
    AWS_CONFIG_FILE="$(jq -r .awsConfigFile "$standins")" \
    AWS_SHARED_CREDENTIALS_FILE="$(jq -r .awsSharedCredentialsFile "$standins")" \
    DOCKER_CONFIG="$work/docker-config" \
    DOCKER_HOST="$engine" \
    "$@"
}

# Pushes a compose file with the native path under /usr/bin/time and
# records its process time, push-call time, peak memory and bytes sent
# under LABEL_*. Further arguments go to the example.
native_push() {
  local compose_file="$1" label="$2" elapsed peak
  shift 2
  clean_env /usr/bin/time -f '%e %M' -o "$work/$label.time" \
    "$example" --compose "$compose_file" --alias "$registry=$ECR_HOST" \
    --serial-number "$(jq -r .serialNumber "$standins")" "$@" >"$work/$label.json"
  read -r elapsed peak <"$work/$label.time"
  record "${label}_process" "$elapsed"
  record "${label}_push" "$(jq -r '.seconds * 100 | round / 100' "$work/$label.json")"
  record "${label}_peak" "$(calc "round($peak / 1024)")"
  record "${label}_sent" "$(calc "round($(jq -r .bytesUploaded "$work/$label.json") / 1048576)")"
  record "${label}_blobs" "$(jq -r .blobsUploaded "$work/$label.json")"
}

# Starts an empty registry for one round and logs the engine in to it.
start_registry() {
  registry_state="$work/registry-$1"
  python3 tests/stand-ins/standins.py start --state "$registry_state" \
    --services registry >"$registry_state.json"
  registry="$(jq -r .registry.host "$registry_state.json")"
  username="$(jq -r .registry.username "$registry_state.json")"
  password="$(jq -r .registry.password "$registry_state.json")"
  printf '%s' "$password" |
    clean_env docker login --username "$username" --password-stdin "$registry" \
      >/dev/null 2>"$work/login.log"
}

# Fails unless the registry serves tag 1 of every image under PREFIX, so a
# tool that pushed nothing cannot pass for a fast one.
check_pushed() {
  local prefix="$1" entry name status
  for entry in "${IMAGES[@]}"; do
    read -r name _ <<<"$entry"
    status="$(curl -s -o /dev/null -w '%{http_code}' -I -u "$username:$password" \
      -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
      -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
      "http://$registry/v2/$prefix/$name/manifests/1")"
    if [[ "$status" != 200 ]]; then
      log "the registry has no $prefix/$name:1 (HTTP $status) after the push"
      return 1
    fi
  done
}

# Prints the MiB that the set under PREFIX takes in the registry: the sizes
# of the configs and layers its manifests list.
stored_mib() {
  local prefix="$1" entry name total=0 size
  for entry in "${IMAGES[@]}"; do
    read -r name _ <<<"$entry"
    size="$(curl -s -u "$username:$password" \
      -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
      -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
      "http://$registry/v2/$prefix/$name/manifests/1" |
      jq '.config.size + ([.layers[].size] | add)')"
    total=$((total + size))
  done
  calc "round($total / 1048576, 1)"
}

stop_registry() {
  python3 tests/stand-ins/standins.py stop --state "$registry_state" >/dev/null
  registry_state=""
}

stop_compose_services() {
  if [[ -n "${registry_state:-}" ]]; then
    python3 tests/stand-ins/standins.py stop --state "$registry_state" >&2 || true
  fi
  if [[ -n "${work:-}" && -d "$work" ]]; then
    python3 tests/stand-ins/standins.py stop --state "$work/stand-ins" >&2 || true
    rm -rf "$work"
  fi
}

# Builds the compose set in the engine as bench/NAME:1.
build_images() {
  local entry name text_mib random_mib context
  for entry in "${IMAGES[@]}"; do
    read -r name text_mib random_mib <<<"$entry"
    context="$work/context/$name"
    mkdir -p "$context"
    write_text "$text_mib" "$name" "$context/text.txt"
    head -c "$((random_mib << 20))" /dev/urandom >"$context/random.bin"
    printf 'FROM scratch\nCOPY text.txt /data/text.txt\nCOPY random.bin /data/random.bin\n' \
      >"$context/Dockerfile"
    clean_env DOCKER_BUILDKIT=0 docker build -q -t "bench/$name:1" "$context" >/dev/null
    rm -rf "$context"
  done
}

# Pushes the compose set with every tool to a fresh registry.
run_round() {
  local round="$1" entry name elapsed peak started
  data_home="$work/data-$round"
  cache_home="$work/cache-$round"
  start_registry "$round"
  # The native path needs ECR repositories in moto; a new prefix per
  # round makes each first push create them, as a first push would.
  local native_compose="$work/native-$round.yaml"
  local compose_compose="$work/compose-$round.yaml"
  local fast_compose="$work/fast-$round.yaml"
  echo "services:" >"$native_compose"
  echo "services:" >"$compose_compose"
  echo "services:" >"$fast_compose"
  for entry in "${IMAGES[@]}"; do
    read -r name _ <<<"$entry"
    clean_env docker tag "bench/$name:1" "$registry/native$round/$name:1"
    clean_env docker tag "bench/$name:1" "$registry/fast$round/$name:1"
    printf '  %s:\n    image: %s/fast%s/%s:1\n' "$name" "$registry" "$round" "$name" \
      >>"$fast_compose"
    clean_env docker tag "bench/$name:1" "$registry/compose/$name:1"
    printf '  %s:\n    image: %s/native%s/%s:1\n' "$name" "$registry" "$round" "$name" \
      >>"$native_compose"
    # docker-compose v1 pushes only services that have a build section.
    printf '  %s:\n    build: %s\n    image: %s/compose/%s:1\n' \
      "$name" "$work/empty-context" "$registry" "$name" >>"$compose_compose"
  done

  log "round $round: native push"
  native_push "$native_compose" first
  check_pushed "native$round"
  record first_stored "$(stored_mib "native$round")"
  log "round $round: native re-push"
  native_push "$native_compose" again
  log "round $round: native push at gzip level 1"
  # Its own digest cache, so that it compresses every layer again.
  cache_home="$work/cache-$round-fast"
  native_push "$fast_compose" fast --compression-level 1
  cache_home="$work/cache-$round"
  check_pushed "fast$round"
  record fast_stored "$(stored_mib "fast$round")"

  log "round $round: skopeo copy, one image after another"
  local skopeo_seconds=0 skopeo_peak=0
  for entry in "${IMAGES[@]}"; do
    read -r name _ <<<"$entry"
    # skopeo running as root keeps its blob info cache in
    # /var/lib/containers/cache; a non-zero _CONTAINERS_ROOTLESS_UID moves
    # it under XDG_DATA_HOME in the work folder.
    clean_env _CONTAINERS_ROOTLESS_UID=65534 /usr/bin/time -f '%e %M' -o "$work/skopeo.time" \
      skopeo copy --quiet --src-daemon-host "$engine" \
      --dest-creds "$username:$password" --dest-tls-verify=false \
      "docker-daemon:bench/$name:1" "docker://$registry/skopeo/$name:1"
    read -r elapsed peak <"$work/skopeo.time"
    skopeo_seconds="$(calc "round($skopeo_seconds + $elapsed, 2)")"
    skopeo_peak="$(calc "max($skopeo_peak, round($peak / 1024))")"
  done
  check_pushed skopeo
  record skopeo_stored "$(stored_mib skopeo)"
  record skopeo_process "$skopeo_seconds"
  record skopeo_peak "$skopeo_peak"

  log "round $round: docker-compose push"
  started="$(now)"
  if ! clean_env docker-compose --project-name benchmark --file "$compose_compose" \
    push >/dev/null 2>"$work/compose.log"; then
    cat "$work/compose.log" >&2
    return 1
  fi
  record compose_process "$(calc "round($(now) - $started, 2)")"
  check_pushed compose
  record compose_stored "$(stored_mib compose)"
  stop_registry
}

run_compose() {
  log "building the example push_benchmark (release)"
  cargo build --release --example push_benchmark --quiet
  example="$PWD/target/release/examples/push_benchmark"
  declare -gA result=()

  work="$(mktemp -d /tmp/ecr-compose-benchmark-XXXXXX)"
  trap stop_compose_services EXIT
  mkdir -p "$work/home/run" "$work/tmp" "$work/docker-config" "$work/empty-context"
  chmod 700 "$work/home/run"
  echo "FROM scratch" >"$work/empty-context/Dockerfile"
  data_home="$work/data"
  cache_home="$work/cache"
  log "starting the STS and engine stand-ins in $work/stand-ins"
  standins="$work/standins.json"
  python3 tests/stand-ins/standins.py start --state "$work/stand-ins" \
    --services sts,engine >"$standins"
  engine="$(jq -r .engine.host "$standins")"

  log "building the compose set with the stand-in engine"
  build_images
  local round
  for round in $(seq 1 "$ROUNDS"); do
    run_round "$round"
  done

  log "importing an image with a ${BIG_LAYER_MIB} MiB random layer"
  mkdir -p "$work/big"
  head -c "$((BIG_LAYER_MIB << 20))" /dev/urandom >"$work/big/big.bin"
  tar -C "$work/big" -cf - big.bin | clean_env docker import - bench/big:1 >/dev/null
  rm -rf "$work/big"
  data_home="$work/data-big"
  cache_home="$work/cache-big"
  start_registry big
  clean_env docker tag bench/big:1 "$registry/native/big:1"
  printf 'services:\n  big:\n    image: %s/native/big:1\n' "$registry" >"$work/big.yaml"
  log "pushing it with the native path"
  native_push "$work/big.yaml" big
  stop_registry

  write_compose_results >"$work/results.md"
  cat "$work/results.md"
  if [[ "$update_docs" == true ]]; then
    update_docs_section "$work/results.md"
    log "updated $DOCS"
  fi
}

# Prints PASS or MISSED for "value <= limit".
verdict() { calc "'PASS' if $1 <= $2 else 'MISSED'"; }

# Prints "median s (min to max)" of the measurements named NAME.
spread() {
  calc "'%.2f s (%.2f to %.2f)' % ($(median "$1"), $(lowest "$1"), $(highest "$1"))"
}

# Prints the median of the measurements named NAME with two decimals.
seconds() { calc "'%.2f s' % $(median "$1")"; }

write_compose_results() {
  local set_mib=0 entry name text_mib random_mib shapes=()
  for entry in "${IMAGES[@]}"; do
    read -r name text_mib random_mib <<<"$entry"
    set_mib=$((set_mib + text_mib + random_mib))
    shapes+=("$name ${text_mib} + ${random_mib}")
  done
  local shape_list native skopeo skopeo_ratio process_ratio repush_ratio big_peak fast_ratio
  shape_list="$(printf '%s, ' "${shapes[@]}")"
  native="$(median first_push)"
  skopeo="$(median skopeo_process)"
  skopeo_ratio="$(calc "'%.2f' % ($native / $skopeo)")"
  process_ratio="$(calc "'%.2f' % ($(median first_process) / $skopeo)")"
  fast_ratio="$(calc "'%.2f' % ($(median fast_push) / $skopeo)")"
  repush_ratio="$(calc "'%.3f' % ($(median again_push) / $native)")"
  big_peak="$(median big_peak)"

  cat <<EOF
- Run: $(date -u +%Y-%m-%d), \`${command_line}\`, ${ROUNDS} rounds.
- Machine: $(nproc) cores ($(lscpu | sed -n 's/^Model name: *//p' | head -1)), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM,
  $(. /etc/os-release && echo "$PRETTY_NAME"), load average ${load_before} before the run.
- Tools: $(rustc --version | cut -d' ' -f1-2) (release profile), skopeo $(skopeo --version | awk '{print $NF}'),
  docker-compose $(docker-compose version --short 2>/dev/null), dockerd $(dockerd --version | sed 's/^Docker version //; s/,.*//'),
  docker-registry $(docker-registry --version | awk '{print $NF}').
- Set: ${shape_list%, } MiB of text + random, ${set_mib} MiB uncompressed.

| case | push | whole process | peak memory | stored |
| --- | --- | --- | --- | --- |
| native, first push | $(spread first_push) | $(seconds first_process) | $(median first_peak) MiB | $(median first_stored) MiB |
| native, first push, gzip level 1 | $(spread fast_push) | $(seconds fast_process) | $(median fast_peak) MiB | $(median fast_stored) MiB |
| native, re-push unchanged | $(spread again_push) | $(seconds again_process) | $(median again_peak) MiB | $(median again_sent) MiB sent |
| skopeo copy, one image after another | $(spread skopeo_process) | | $(median skopeo_peak) MiB | $(median skopeo_stored) MiB |
| docker-compose push | $(spread compose_process) | | | $(median compose_stored) MiB |
| native, one ${BIG_LAYER_MIB} MiB random layer | $(seconds big_push) | $(seconds big_process) | ${big_peak} MiB | $(median big_sent) MiB sent |

| target | measured | limit | result |
| --- | --- | --- | --- |
| native push / skopeo | ${skopeo_ratio} | ${TARGET_SKOPEO_RATIO} | $(verdict "$skopeo_ratio" "$TARGET_SKOPEO_RATIO") |
| native whole process / skopeo | ${process_ratio} | ${TARGET_SKOPEO_RATIO} | $(verdict "$process_ratio" "$TARGET_SKOPEO_RATIO") |
| native at gzip level 1 / skopeo | ${fast_ratio} | ${TARGET_SKOPEO_RATIO} | $(verdict "$fast_ratio" "$TARGET_SKOPEO_RATIO") |
| re-push / first push | ${repush_ratio} | ${TARGET_REPUSH_RATIO} | $(verdict "$repush_ratio" "$TARGET_REPUSH_RATIO") |
| peak memory, ${BIG_LAYER_MIB} MiB layer | ${big_peak} MiB | ${TARGET_PEAK_MIB} MiB | $(verdict "$big_peak" "$TARGET_PEAK_MIB") |
EOF
}

# Replaces the text between the markers in docs/benchmarks.md with a file.
update_docs_section() {
  python3 - "$DOCS" "$1" "$BEGIN_MARKER" "$END_MARKER" <<'PY'
import sys

docs, results, begin, end = sys.argv[1:5]
text = open(docs, encoding="utf-8").read()
start = text.index(begin) + len(begin)
stop = text.index(end)
body = open(results, encoding="utf-8").read()
with open(docs, "w", encoding="utf-8") as file:
    file.write(text[:start] + "\n" + body + text[stop:])
PY
}

command_line="scripts/benchmark.sh $*"
update_docs=false
parts=()
for argument in "$@"; do
  case "$argument" in
    --update-docs) update_docs=true ;;
    micro | compose) parts+=("$argument") ;;
    *)
      echo "benchmark: the argument '$argument' is invalid: use [--update-docs] [micro] [compose]" >&2
      exit 2
      ;;
  esac
done
if [[ ${#parts[@]} -eq 0 ]]; then
  parts=(micro compose)
fi
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
for part in "${parts[@]}"; do
  "run_$part"
done
