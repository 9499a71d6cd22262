// loa console, speaking live: runs on the browser's audio thread. The microphone's
// samples, mixed to mono, are posted to the page 50 ms at a time (live.js sends them on).
class LoaCapture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.block = new Float32Array(Math.round(sampleRate / 20));
    this.filled = 0;
  }
  process(inputs) {
    var input = inputs[0];
    if (input && input.length > 0) {
      var frames = input[0].length;
      for (var i = 0; i < frames; i++) {
        var sum = 0;
        for (var c = 0; c < input.length; c++) sum += input[c][i];
        this.block[this.filled++] = sum / input.length;
        if (this.filled === this.block.length) {
          this.port.postMessage(this.block);
          this.block = new Float32Array(this.block.length);
          this.filled = 0;
        }
      }
    }
    return true;
  }
}
registerProcessor('loa-capture', LoaCapture);
