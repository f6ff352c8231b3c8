// tandem-control-bench: measures the API's leg join and leave rate with batch
// calls against a running tandem-control (scripts/bench_control.sh starts
// one). Each client thread joins participants with `--legs-per-participant`
// legs into its own live meeting, `--batch` legs per call, then makes them
// all leave, `--batch` legs per call (unless `--keep`).
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "control.grpc.pb.h"

ABSL_FLAG(std::string, api, "unix:/run/tandem/a.sock", "tandem-control API address");
ABSL_FLAG(uint32_t, legs, 200000, "legs to join and leave in total");
ABSL_FLAG(uint32_t, batch, 1000, "legs per Join or Leave call");
ABSL_FLAG(uint32_t, legs_per_participant, 2,
          "legs of each participant (audio, video, share); 0: participants without legs, "
          "counted by --legs and --batch");
ABSL_FLAG(uint32_t, threads, 2, "client threads, each with its own meeting");
ABSL_FLAG(uint32_t, rounds, 1, "join/leave rounds");
ABSL_FLAG(uint32_t, sites, 0, "first create this many more sites ...");
ABSL_FLAG(uint32_t, preferences, 0, "... each with this many preferences (a large state)");
ABSL_FLAG(bool, keep, false,
          "join only, and leave the legs and their meetings live: a large state for a test");

namespace v1 = tandem::control::v1;

namespace {

[[noreturn]] void Die(const std::string& what, const grpc::Status& st) {
  fprintf(stderr, "tandem-control-bench: %s: %s\n", what.c_str(), st.error_message().c_str());
  exit(1);
}

std::string Remote(uint32_t thread, uint32_t i) {
  // Distinct remotes in 198.18.0.0/15: one address per 50000 ports.
  uint32_t addr = (198u << 24) | (18u << 16) | ((thread * 64 + i / 50000 + 1) & 0x1ffff);
  return absl::StrCat((addr >> 24) & 255, ".", (addr >> 16) & 255, ".", (addr >> 8) & 255, ".",
                      addr & 255, ":", 10000 + i % 50000);
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const uint32_t threads = std::max(1u, absl::GetFlag(FLAGS_threads));
  const uint32_t per_thread = absl::GetFlag(FLAGS_legs) / threads;
  const uint32_t batch = std::max(1u, absl::GetFlag(FLAGS_batch));
  const uint32_t lpp = std::min(absl::GetFlag(FLAGS_legs_per_participant), 3u);
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(256 << 20);
  auto channel =
      grpc::CreateCustomChannel(absl::GetFlag(FLAGS_api), grpc::InsecureChannelCredentials(), args);
  auto stub = v1::Control::NewStub(channel);

  for (uint32_t i = 0; i < absl::GetFlag(FLAGS_sites); ++i) {
    v1::CreateSiteRequest req;
    req.mutable_site()->set_name(absl::StrCat("bench-", getpid(), "-site-", i));
    auto& prefs = *req.mutable_site()->mutable_preferences();
    for (uint32_t k = 0; k < absl::GetFlag(FLAGS_preferences); ++k) {
      prefs[absl::StrCat("k", k)].assign(1, 'v');
    }
    v1::Site out;
    grpc::ClientContext ctx;
    if (auto st = stub->CreateSite(&ctx, req, &out); !st.ok()) Die("create sites", st);
  }
  v1::CreateSiteRequest site_req;
  site_req.mutable_site()->set_name(absl::StrCat("bench-", getpid(), "-", time(nullptr)));
  v1::Site site;
  {
    grpc::ClientContext ctx;
    if (auto st = stub->CreateSite(&ctx, site_req, &site); !st.ok()) Die("create site", st);
  }
  std::vector<uint64_t> meetings;
  for (uint32_t t = 0; t < threads; ++t) {
    v1::ScheduleMeetingRequest sreq;
    sreq.mutable_meeting()->set_site_id(site.site_id());
    sreq.mutable_meeting()->set_title(absl::StrCat("bench ", t));
    v1::Meeting m;
    grpc::ClientContext c1;
    if (auto st = stub->ScheduleMeeting(&c1, sreq, &m); !st.ok()) Die("schedule", st);
    v1::StartMeetingRequest start;
    start.set_meeting_id(m.meeting_id());
    grpc::ClientContext c2;
    if (auto st = stub->StartMeeting(&c2, start, &m); !st.ok()) Die("start", st);
    meetings.push_back(m.meeting_id());
  }

  for (uint32_t round = 0; round < absl::GetFlag(FLAGS_rounds); ++round) {
    std::vector<std::vector<uint64_t>> participants(threads);
    auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> workers;
    for (uint32_t t = 0; t < threads; ++t) {
      workers.emplace_back([&, t] {
        uint32_t done = 0;
        while (done < per_thread) {
          v1::JoinRequest req;
          uint32_t n = std::min(batch, per_thread - done);
          for (uint32_t legs = 0; legs < n;) {
            v1::ParticipantJoin* p = req.add_participants();
            p->set_meeting_id(meetings[t]);
            if (lpp == 0) ++legs;  // a participant without legs
            for (uint32_t c = 0; c < lpp && legs < n; ++c, ++legs) {
              v1::LegRequest* l = p->add_legs();
              l->set_channel(static_cast<v1::Channel>(c + 1));
              l->set_remote(Remote(t, done + legs));
            }
          }
          v1::JoinResponse resp;
          grpc::ClientContext ctx;
          if (auto st = stub->Join(&ctx, req, &resp); !st.ok()) Die("join", st);
          for (const auto& p : resp.participants()) participants[t].push_back(p.participant_id());
          done += n;
        }
      });
    }
    for (auto& w : workers) w.join();
    double join_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    uint64_t total = uint64_t{per_thread} * threads;
    printf("join:  %lu legs in %.3f s = %.0f legs/s (batch %u, %u threads)\n",
           static_cast<unsigned long>(total), join_s, total / join_s, batch, threads);
    if (absl::GetFlag(FLAGS_keep)) return 0;

    t0 = std::chrono::steady_clock::now();
    workers.clear();
    for (uint32_t t = 0; t < threads; ++t) {
      workers.emplace_back([&, t] {
        const auto& ids = participants[t];
        size_t per_call = std::max<size_t>(1, batch / std::max(1u, lpp));
        for (size_t i = 0; i < ids.size(); i += per_call) {
          v1::LeaveRequest req;
          for (size_t j = i; j < std::min(ids.size(), i + per_call); ++j) {
            req.add_participant_ids(ids[j]);
          }
          v1::LeaveResponse resp;
          grpc::ClientContext ctx;
          if (auto st = stub->Leave(&ctx, req, &resp); !st.ok()) Die("leave", st);
        }
      });
    }
    for (auto& w : workers) w.join();
    double leave_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    printf("leave: %lu legs in %.3f s = %.0f legs/s\n", static_cast<unsigned long>(total), leave_s,
           total / leave_s);
    printf("join+leave: %.0f legs/s\n", 2.0 * total / (join_s + leave_s));
  }
  for (uint64_t id : meetings) {
    v1::EndMeetingRequest req;
    req.set_meeting_id(id);
    v1::Meeting m;
    grpc::ClientContext ctx;
    (void)stub->EndMeeting(&ctx, req, &m);
  }
  return 0;
}
