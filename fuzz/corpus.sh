#!/usr/bin/env bash
# ./build.sh corpus [--package NAME] [--dir DIR]: the Linux corpus check (docs/emulation.md).
# Fetches a Debian amd64 kernel package with apt (default: the one linux-image-amd64 depends on), extracts vmlinux
# (the bzImage payload, decompressed) and the modules (.ko, .ko.xz, .ko.zst), and runs the fuzz runner's --corpus
# check over them. Downloads about 70 MB and unpacks about 400 MB into DIR (default artifacts/corpus); a package
# already in DIR is reused. Not part of `./build.sh test`. Exit codes: those of the check (0 clean, 1 refusals or
# disagreements), 2 for a usage mistake or a package that cannot be fetched or unpacked.
set -euo pipefail
cd "$(dirname "$0")/.."
pkg="" dir="artifacts/corpus"
while [ $# -gt 0 ]; do
  case "$1" in
    --package) pkg="${2:-}"; shift 2 || { echo "corpus: --package needs a package name" >&2; exit 2; } ;;
    --dir) dir="${2:-}"; shift 2 || { echo "corpus: --dir needs a directory" >&2; exit 2; } ;;
    -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "corpus: unknown option $1 (usage: ./build.sh corpus [--package NAME] [--dir DIR])" >&2; exit 2 ;;
  esac
done
for tool in apt-get apt-cache dpkg-deb od xz; do
  command -v "$tool" >/dev/null || { echo "corpus: '$tool' is needed (a Debian or Ubuntu host)" >&2; exit 2; }
done
if [ -z "$pkg" ]; then
  pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/ { print $2; exit }')
  [ -n "$pkg" ] || { echo "corpus: cannot resolve the package behind linux-image-amd64 (run apt-get update, or pass --package)" >&2; exit 2; }
fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
deb=$(ls "$dir/${pkg}"_*.deb 2>/dev/null | head -n 1 || true)
if [ -z "$deb" ]; then
  (cd "$dir" && apt-get download "$pkg" >/dev/null 2>"$dir/download.log") || { echo "corpus: apt-get download $pkg failed: $(tail -n 1 "$dir/download.log")" >&2; exit 2; }
  deb=$(ls "$dir/${pkg}"_*.deb | head -n 1)
fi
version=$(dpkg-deb -f "$deb" Version)
root="$dir/root"
rm -rf "$root"
dpkg-deb -x "$deb" "$root" || { echo "corpus: cannot unpack $deb" >&2; exit 2; }

# vmlinux: the bzImage's protected-mode payload (boot protocol: setup_sects at 0x1F1, payload_offset/length at 0x248).
vmlinuz=$(ls "$root"/boot/vmlinuz-* | head -n 1)
u() { od -An -t"u$2" -j "$1" -N "$2" "$vmlinuz" | tr -d ' '; }
setup=$(u $((0x1F1)) 1); [ "$setup" -eq 0 ] && setup=4
poff=$(u $((0x248)) 4); plen=$(u $((0x24C)) 4)
start=$(( (setup + 1) * 512 + poff ))
magic=$(od -An -tx1 -j "$start" -N 6 "$vmlinuz" | tr -d ' \n')
payload() { dd if="$vmlinuz" bs=65536 iflag=skip_bytes,count_bytes skip="$start" count="$plen" status=none; }
case "$magic" in
  fd377a585a00) payload | xz -dc --single-stream > "$root/vmlinux" ;;
  1f8b*) payload | gzip -dc > "$root/vmlinux" 2>/dev/null || true ;;
  28b52ffd*) payload | zstd -dc > "$root/vmlinux" ;;
  *) echo "corpus: unknown bzImage payload compression (magic $magic)" >&2; exit 2 ;;
esac
find "$root/lib/modules" -name '*.ko.xz' -exec xz -d {} +
if find "$root/lib/modules" -name '*.ko.zst' | grep -q .; then find "$root/lib/modules" -name '*.ko.zst' -exec zstd -q -d --rm {} +; fi

echo "corpus: $pkg $version ($(date -u +%Y-%m-%d)), vmlinux $(stat -c %s "$root/vmlinux") bytes, $(find "$root/lib/modules" -name '*.ko' | wc -l) modules" >&2
dotnet run --project fuzz -c Release -- --corpus "$root" --sample "$dir/sample.hex"
