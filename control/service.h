// The gRPC face of the control core: translates calls and statuses, counts
// calls by method and code for /metrics, and streams the change log.
#pragma once

#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "control.grpc.pb.h"
#include "control/api_roles.h"
#include "control/api_socket.h"
#include "control/core.h"
#include "control/pair.h"

namespace tandem::control {

class Service final : public v1::Control::Service {
 public:
  // `roles` decides who may make each call (control/api_roles.h); callers on
  // the Unix socket are identified through `unix_socket` (may be null).
  Service(Core& core, Pair* pair, RoleMap roles, const UnixApiSocket* unix_socket)
      : core_(core), pair_(pair), roles_(std::move(roles)), unix_socket_(unix_socket) {}

  grpc::Status GetStatus(grpc::ServerContext*, const v1::GetStatusRequest* req,
                         v1::NodeStatus* resp) override;
  grpc::Status CreateSite(grpc::ServerContext*, const v1::CreateSiteRequest* req,
                          v1::Site* resp) override;
  grpc::Status GetSite(grpc::ServerContext*, const v1::GetSiteRequest* req,
                       v1::Site* resp) override;
  grpc::Status ListSites(grpc::ServerContext*, const v1::ListSitesRequest* req,
                         v1::ListSitesResponse* resp) override;
  grpc::Status UpdateSite(grpc::ServerContext*, const v1::UpdateSiteRequest* req,
                          v1::Site* resp) override;
  grpc::Status DeleteSite(grpc::ServerContext*, const v1::DeleteSiteRequest* req,
                          v1::DeleteSiteResponse* resp) override;
  grpc::Status ScheduleMeeting(grpc::ServerContext*, const v1::ScheduleMeetingRequest* req,
                               v1::Meeting* resp) override;
  grpc::Status StartMeeting(grpc::ServerContext*, const v1::StartMeetingRequest* req,
                            v1::Meeting* resp) override;
  grpc::Status EndMeeting(grpc::ServerContext*, const v1::EndMeetingRequest* req,
                          v1::Meeting* resp) override;
  grpc::Status GetMeeting(grpc::ServerContext*, const v1::GetMeetingRequest* req,
                          v1::Meeting* resp) override;
  grpc::Status ListMeetings(grpc::ServerContext*, const v1::ListMeetingsRequest* req,
                            v1::ListMeetingsResponse* resp) override;
  grpc::Status UpdateMeeting(grpc::ServerContext*, const v1::UpdateMeetingRequest* req,
                             v1::Meeting* resp) override;
  grpc::Status Join(grpc::ServerContext*, const v1::JoinRequest* req,
                    v1::JoinResponse* resp) override;
  grpc::Status Leave(grpc::ServerContext*, const v1::LeaveRequest* req,
                     v1::LeaveResponse* resp) override;
  grpc::Status SetRole(grpc::ServerContext*, const v1::SetRoleRequest* req,
                       v1::Participant* resp) override;
  grpc::Status SetMute(grpc::ServerContext*, const v1::SetMuteRequest* req,
                       v1::SetMuteResponse* resp) override;
  grpc::Status ListParticipants(grpc::ServerContext*, const v1::ListParticipantsRequest* req,
                                v1::ListParticipantsResponse* resp) override;
  grpc::Status ListLegs(grpc::ServerContext*, const v1::ListLegsRequest* req,
                        v1::ListLegsResponse* resp) override;
  grpc::Status GetUsage(grpc::ServerContext*, const v1::GetUsageRequest* req,
                        v1::GetUsageResponse* resp) override;
  grpc::Status Watch(grpc::ServerContext* ctx, const v1::WatchRequest* req,
                     grpc::ServerWriter<v1::Change>* writer) override;
  grpc::Status ComparePair(grpc::ServerContext*, const v1::ComparePairRequest* req,
                           v1::ComparePairResponse* resp) override;
  grpc::Status Switchover(grpc::ServerContext*, const v1::SwitchoverRequest* req,
                          v1::SwitchoverResponse* resp) override;
  grpc::Status LostWrites(grpc::ServerContext*, const v1::LostWritesRequest* req,
                          v1::LostWritesResponse* resp) override;
  grpc::Status AcknowledgeLostWrites(grpc::ServerContext*,
                                     const v1::AcknowledgeLostWritesRequest* req,
                                     v1::LostWritesResponse* resp) override;

  // Prometheus lines of the API counters.
  std::string RenderMetrics() const;

 private:
  // OK when the caller's role allows `method` (with Switchover's `force`),
  // else PERMISSION_DENIED naming the caller, its role and the role needed.
  grpc::Status Allow(grpc::ServerContext* ctx, const char* method, bool force = false);
  grpc::Status Reply(const char* method, const absl::Status& st);
  grpc::Status Write(const char* method, const absl::Status& st);

  Core& core_;
  Pair* pair_;
  const RoleMap roles_;
  const UnixApiSocket* unix_socket_;
  mutable absl::Mutex mu_;
  // (method, code) -> calls
  absl::flat_hash_map<std::pair<std::string, int>, uint64_t> calls_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tandem::control
