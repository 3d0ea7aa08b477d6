# Zoology's Figure 2 grid (issue 21: 384 trainings, the bar 60 minutes on one H200 with warm caches), resumable
# across machines: its results live under $SB/zoology, which session_poll.sh packs into $OUT and the next
# machine restores from .carry/restore/ (scripts/gpu/restore_carry.sh), so `--resume` goes on where the last
# machine stopped. SLOTS trainings share the card at once (choose it from speed-warm.sh's runs per hour).
RESULTS=$SB/zoology
stage kernels; time seqbench kernels build
stage zoology
if [ -d "$RESULTS/recall" ]; then resume=--resume; else resume=; fi
seqbench run recall --preset zoology-fig2 --slots-per-gpu "${SLOTS:-4}" $resume --results "$RESULTS"
