# LRA's byte-level Text task on IMDb (issue 25): the lra-text preset, S4 alone first (its bar: >= 85% test
# accuracy in at most 20 minutes of training), then the other mixers (MIXERS, default none) beside each other.
# The reviews travel as .data/aclImdb-labelled.tar.xz (`mkdir -p .data && cp ../shared/data/aclImdb-labelled.tar.xz
# .data/` on the machine that starts the session; .data/ is git-ignored; carry: [".whl", ".carry", ".data"]).
imdb_data
stage kernels; time seqbench kernels build
stage lra-s4
seqbench run classify --preset lra-text --family s4 --seq-len 4096 --results "$SESSION/runs/lra-s4"
for family in ${MIXERS:-}; do
  stage "lra-$family"
  seqbench run classify --preset lra-text --family "$family" --seq-len 4096 --results "$SESSION/runs/lra-$family" \
    > "$SESSION/logs/lra-$family.log" 2>&1 &
done
wait
