# syntax=docker/dockerfile:1
# WebDefense service image: web, worker or both (WebDefense__Role). UNTESTED IN CI: no Docker engine runs on the
# build machines, so this file has never been built there (docs/deployment.md).
#   CPU:  docker build -t webdefense .
#   GPU:  docker build --build-arg TORCH_BACKEND=cuda \
#           --build-arg RUNTIME_BASE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 -t webdefense:cuda .
# TORCH_BACKEND=cuda publishes with -p:TorchBackend=cuda, which references TorchSharp-cuda-linux (libtorch 2.10 for
# CUDA 12.8) instead of libtorch-cpu-linux-x64.
ARG RUNTIME_BASE=mcr.microsoft.com/dotnet/aspnet:10.0-noble

FROM mcr.microsoft.com/dotnet/sdk:10.0-noble AS build
ARG TORCH_BACKEND=cpu
WORKDIR /src
COPY . .
RUN dotnet publish src/Server/WebDefense.Server.csproj -c Release -r linux-x64 --self-contained false \
      -p:TorchBackend=${TORCH_BACKEND} -o /app

# The ASP.NET Core runtime, taken from Microsoft's image of the same Ubuntu (24.04) so that a CUDA base gets it too.
FROM mcr.microsoft.com/dotnet/aspnet:10.0-noble AS dotnet

FROM ${RUNTIME_BASE} AS runtime
COPY --from=dotnet /usr/share/dotnet /usr/share/dotnet
RUN ln -sf /usr/share/dotnet/dotnet /usr/bin/dotnet \
    && apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl libicu74 tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system webdefense && useradd --system --gid webdefense --home-dir /app --no-create-home webdefense \
    && mkdir -p /data && chown webdefense:webdefense /data
WORKDIR /app
COPY --from=build /app .
USER webdefense
ENV ASPNETCORE_URLS=http://+:8080 \
    WebDefense__DataDirectory=/data
# SQLite database (single machine), uploads, artifacts and the runs' work folders.
VOLUME ["/data"]
EXPOSE 8080
# Web and worker processes both answer /health (ready when the tensor engine loaded).
HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 CMD curl -fsS http://localhost:8080/health || exit 1
ENTRYPOINT ["dotnet", "WebDefense.Server.dll"]
