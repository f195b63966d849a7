#!/usr/bin/env bash
# Mutation testing (mutmut 3) over the sans-I/O core, the webhook signature schemes and, with
# --stores, the SQL queue stores. Not part of CI: it takes minutes (core + signatures) to an hour
# (stores). Runs in a scratch copy so the repository never sees mutmut's mutants/ tree.
#
#   tools/mutation.sh                 # core/ and inbox/signatures/, prints the score
#   tools/mutation.sh --stores        # the queue stores too (slow: real SQLite and PostgreSQL)
#   tools/mutation.sh --only core     # one area: core | signatures | stores
#   MUTATION_DIR=/tmp/mut tools/mutation.sh   # where the scratch copy goes (kept for `mutmut show`)
#
# Needs mutmut in the venv: .venv/bin/pip install 'mutmut==3.8.1'. Surviving mutants are listed
# at the end; `cd $MUTATION_DIR && ../.venv/bin/mutmut show NAME` prints one as a diff.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
venv=${VENV:-$repo/.venv}
work=${MUTATION_DIR:-/tmp/interlock-mutation}
areas=(core signatures)
while [ $# -gt 0 ]; do
  case $1 in
    --stores) areas+=(stores) ;;
    --only) shift; areas=("$1") ;;
    *) echo "usage: $0 [--stores] [--only core|signatures|stores]" >&2; exit 2 ;;
  esac
  shift
done
[ -x "$venv/bin/mutmut" ] || { echo "mutmut missing: $venv/bin/pip install 'mutmut==3.8.1'" >&2; exit 2; }

mutate=() tests=()
for area in "${areas[@]}"; do
  case $area in
    core) mutate+=("src/interlock/core/*"); tests+=(tests/core) ;;
    signatures) mutate+=("src/interlock/inbox/signatures/*"); tests+=(tests/inbox/test_signatures.py) ;;
    stores) mutate+=("src/interlock/stores/queue*.py" "src/interlock/stores/_queue_rows.py")
            tests+=(tests/contract/test_queue_contract.py) ;;
    *) echo "unknown area $area" >&2; exit 2 ;;
  esac
done

rm -rf "$work" && mkdir -p "$work"
cp -r "$repo/src" "$repo/tests" "$repo/pyproject.toml" "$work/"
find "$work" -name __pycache__ -prune -exec rm -rf {} +
{
  echo "[mutmut]"
  echo "source_paths = src"
  echo "only_mutate ="; printf '    %s\n' "${mutate[@]}"
  echo "pytest_add_cli_args_test_selection ="; printf '    %s\n' "${tests[@]}"
  echo "pytest_add_cli_args ="; printf '    %s\n' -p no:cacheprovider -q
  echo "use_git_change_detection = false"
} > "$work/setup.cfg"

cd "$work"
start=$(date +%s)
"$venv/bin/mutmut" run --max-children "${JOBS:-2}" > mutmut-run.log 2>&1 || { tail -30 mutmut-run.log; exit 1; }
"$venv/bin/mutmut" results --all true > results.txt 2>&1 || true
echo "mutation run of ${areas[*]} in $(( $(date +%s) - start )) s (scratch copy: $work)"
"$venv/bin/python" - "$work/results.txt" <<'PY'
import collections, re, sys
counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
survivors = []
for line in open(sys.argv[1]):
    m = re.match(r"\s*(\S+): (\w[\w ]*)$", line)
    if not m:
        continue
    name, status = m.groups()
    module = name.split(".x_")[0] if ".x_" in name else name.rsplit(".", 1)[0]
    area = "signatures" if ".signatures." in module else module.split(".")[1] if "." in module else module
    counts[area][status] += 1
    counts["all"][status] += 1
    if status == "survived":
        survivors.append(name)
for area, c in counts.items():
    tested = c["killed"] + c["survived"] + c["timeout"]
    score = 100.0 * (c["killed"] + c["timeout"]) / tested if tested else 0.0
    print(f"{area:12} killed {c['killed']:4}  timeout {c['timeout']:3}  survived {c['survived']:4}  "
          f"other {sum(c.values()) - tested:3}  score {score:5.1f} %")
print("survivors:")
for name in survivors:
    print("  " + name)
PY
