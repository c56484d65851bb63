using System.Runtime.Versioning;

// psg's process handling (signals, /proc, child processes) is tested on Linux, the platform it runs on.
[assembly: SupportedOSPlatform("linux")]
