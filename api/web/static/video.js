// Plays a show through WHEP (POST an SDP offer, get the answer; DELETE the session on leave).
// Non-trickle: the offer is sent once ICE gathering is complete (or after 2 s).
export function watchVideo(videoEl, statusEl, showId) {
  let pc = null;
  let location = null;
  let starting = false;

  async function gathered(peer) {
    if (peer.iceGatheringState === "complete") return;
    await new Promise((resolve) => {
      const done = () => { if (peer.iceGatheringState === "complete") resolve(); };
      peer.addEventListener("icegatheringstatechange", done);
      setTimeout(resolve, 2000);
    });
  }

  async function start() {
    if (starting || (pc && ["connected", "connecting", "new"].includes(pc.connectionState))) return;
    starting = true;
    try {
      stop();
      pc = new RTCPeerConnection();
      pc.addTransceiver("video", { direction: "recvonly" });
      pc.addTransceiver("audio", { direction: "recvonly" });
      pc.addEventListener("track", (ev) => {
        if (ev.track.kind !== "video") return;
        videoEl.srcObject = ev.streams[0] || new MediaStream([ev.track]);
        videoEl.play().catch(() => {});
      });
      pc.addEventListener("connectionstatechange", () => {
        statusEl.dataset.state = pc.connectionState;
        if (pc.connectionState === "connected") statusEl.textContent = statusEl.dataset.playing || "▶";
        if (pc.connectionState === "failed") setTimeout(start, 3000);
      });
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc);
      const headers = { "content-type": "application/sdp" };
      const token = sessionStorage.getItem("souk.token");
      if (token) headers.authorization = `Bearer ${token}`;
      const response = await fetch(`/v1/shows/${showId}/whep`, {
        method: "POST", headers, body: pc.localDescription.sdp, credentials: "omit",
      });
      if (response.status !== 201) {
        statusEl.dataset.state = `http-${response.status}`;
        stop();
        return;
      }
      location = response.headers.get("location");
      await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
    } catch (e) {
      statusEl.dataset.state = "error";
      stop();
    } finally {
      starting = false;
    }
  }

  function stop() {
    if (location) fetch(location, { method: "DELETE", keepalive: true }).catch(() => {});
    location = null;
    if (pc) pc.close();
    pc = null;
  }

  addEventListener("pagehide", stop);
  return { start, stop };
}
