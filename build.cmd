@echo off
rem Copra's one entry point on Windows: the twin of build.sh, verb for verb and variable for variable
rem (COPRA_TEST_RESULTS). Verbs: build, test, run, copra, bench, fuzz, aot. Arguments after the verb are passed
rem through untouched: they are cut from %* as typed, never re-collected with %1 (which would split "1,2,4" at the commas).
setlocal
cd /d "%~dp0"
set DOTNET_CLI_TELEMETRY_OPTOUT=1
set DOTNET_NOLOGO=1
set DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
set "VERB=%~1"
if "%VERB%"=="" set "VERB=build"
set "ARGS="
if not "%~1"=="" (
  set "ARGS=%*"
  call set "ARGS=%%ARGS:*%1=%%"
)
if not defined COPRA_TEST_RESULTS set "COPRA_TEST_RESULTS=artifacts\test-results"
if "%VERB%"=="build" ( dotnet build Copra.slnx -c Release %ARGS% & goto end )
if "%VERB%"=="test" (
  dotnet build Copra.slnx -c Release || goto end
  dotnet test Copra.slnx -c Release --no-build --logger trx --results-directory "%COPRA_TEST_RESULTS%" %ARGS%
  goto end
)
if "%VERB%"=="run" ( dotnet run --project kernel -c Release -- run %ARGS% & goto end )
if "%VERB%"=="copra" ( dotnet run --project kernel -c Release -- %ARGS% & goto end )
if "%VERB%"=="bench" ( dotnet run --project bench -c Release -- %ARGS% & goto end )
if "%VERB%"=="fuzz" ( dotnet run --project fuzz -c Release -- %ARGS% & goto end )
if "%VERB%"=="mutate" goto mutate
if "%VERB%"=="aot" (
  if exist artifacts\aot rmdir /s /q artifacts\aot
  dotnet publish kernel -c Release -p:CopraAot=true -o artifacts\aot %ARGS% || goto end
  del /q artifacts\aot\*.pdb artifacts\aot\*.dbg 2>nul
  echo native copra: artifacts\aot\copra.exe
  goto end
)
echo usage: build.cmd build^|test^|run^|copra^|bench^|fuzz^|aot^|mutate [args...] 1>&2
exit /b 2
:mutate
rem Mutation testing (Stryker.NET, local tool pinned in .config\dotnet-tools.json); one config per area in stryker\.
rem The same options as build.sh: --project AREA, --concurrency N, --mutate SPEC (repeatable: Stryker's -m, a file or a
rem span of one in characters, e.g. "Exit/ExitPipeline.cs{0..23185}"). The options are read with shift from %2 on.
set "AREA=cold"
set "CONC="
set "SPANS="
shift
:mutate_opt
if "%~1"=="" goto mutate_run
if /i "%~1"=="--project" (
  if "%~2"=="" ( echo mutate: --project needs cold^|decode^|gate^|pipeline[-host^|-exit^|-devices]^|caches^|report 1>&2 & exit /b 2 )
  set "AREA=%~2"
  shift & shift & goto mutate_opt
)
if /i "%~1"=="--concurrency" (
  echo %~2| findstr /r "^[1-9][0-9]*$" >nul || ( echo mutate: --concurrency needs a number of test hosts ^(1-99^) 1>&2 & exit /b 2 )
  set "CONC=--concurrency %~2"
  shift & shift & goto mutate_opt
)
if /i "%~1"=="--mutate" (
  if "%~2"=="" ( echo mutate: --mutate needs a file or span, e.g. Exit/ExitPipeline.cs{0..23185} ^(characters^) 1>&2 & exit /b 2 )
  set SPANS=%SPANS% -m "%~2"
  shift & shift & goto mutate_opt
)
echo mutate: unknown option %~1 (usage: build.cmd mutate [--project AREA] [--concurrency N] [--mutate SPEC]...) 1>&2
exit /b 2
:mutate_run
set "KNOWN="
for %%a in (cold decode gate pipeline pipeline-host pipeline-exit pipeline-devices caches report) do if /i "%%a"=="%AREA%" set "KNOWN=1"
if not defined KNOWN ( echo mutate: unknown project '%AREA%' ^(cold^|decode^|gate^|pipeline^|pipeline-host^|pipeline-exit^|pipeline-devices^|caches^|report^) 1>&2 & exit /b 2 )
dotnet tool restore >nul || exit /b 1
if not exist artifacts\mutation\%AREA% mkdir artifacts\mutation\%AREA%
rem Stryker runs in the area's test project folder (cold and decode have their own small test projects).
set DIR=tests
if "%AREA%"=="cold" set DIR=tests\Cold
if "%AREA%"=="decode" set DIR=tests\Decode
pushd %DIR%
dotnet tool run dotnet-stryker -- --config-file "%~dp0stryker\%AREA%.json" --output "%~dp0artifacts\mutation\%AREA%" --skip-version-check %CONC% %SPANS%
set RC=%ERRORLEVEL%
popd
exit /b %RC%
:end
exit /b %ERRORLEVEL%
