package sdk

// ParentGoneExitCode is the exit status of a plugin whose host is gone.
const ParentGoneExitCode = parentGoneExitCode
