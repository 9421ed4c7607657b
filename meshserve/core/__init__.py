"""The ground floor every part stands on: errors and their status codes, settings, the model
package, signature checks, the mesh's own protocol, observers, gRPC server basics, processes."""
