#!/bin/bash
# pair-peer.sh - the program of box 2 of a pair (run-pair.sh runs it there; not for run.sh alone).
#
# Box 2 only serves box 1's program (over ssh and the shared xenbr0 segment), so this waits until
# the pair is over: until /run/xenbox/peer-done exists in box 2's dom0, which box 1's program makes
# at its end with
#   ssh "$XENBOX_PEER_ADDR%$XENBOX_BRIDGE" touch /run/xenbox/peer-done
# Then it prints XENBOX-PEER-DONE and exits 0, and box 2 powers off. Bounded by
# XENBOX_PEER_WAIT_TIMEOUT seconds (run-pair.sh sets it a little above the run's --timeout): then
# it exits 1. (run-pair.sh also stops box 2 when box 1 has ended, whatever happened.)
set -uo pipefail
bound=${XENBOX_PEER_WAIT_TIMEOUT:-1200}
[[ "$bound" =~ ^[1-9][0-9]*$ ]] || { echo "pair-peer: XENBOX_PEER_WAIT_TIMEOUT='$bound' is not seconds"; exit 2; }
echo "pair-peer: box ${XENBOX_INDEX:-?} (dom0 ${XENBOX_SELF_ADDR:-?}) serves its peer" \
  "${XENBOX_PEER_ADDR:-?}; waiting for /run/xenbox/peer-done (up to $bound s)"
start=$SECONDS
until [ -e /run/xenbox/peer-done ]; do
  if [ $((SECONDS - start)) -ge "$bound" ]; then
    echo "pair-peer: no /run/xenbox/peer-done after $bound s: box 1 never ended the pair"
    exit 1
  fi
  sleep 0.5
done
echo "XENBOX-PEER-DONE after $((SECONDS - start)) s"
