; Inno Setup script: the Windows installer of a built app (cannot run on Linux; used by
; .github/workflows/release.yml). From the repository root, after packaging/build.sh:
;   python packaging\image_types.py inno > build\windows-associations.iss
;   iscc /DVersion=0.1.0 /DFlavour=lite packaging\windows\cnn-desktop.iss
; gives dist\cnn-desktop[-full]-VERSION-windows-x64-setup.exe: the app in Program Files (or
; the user's folder without admin rights), a start-menu entry, an optional desktop icon,
; cnn-desktop offered in Explorer's "Open with" for every image type the app reads, and an
; uninstaller. cnn-desktop.exe is the window; cnn-desktop-cli.exe the command line.
#ifndef Version
  #error Pass the version: iscc /DVersion=X.Y.Z
#endif
#ifndef Flavour
  #define Flavour "lite"
#endif
#if Flavour == "full"
  #define Suffix "-full"
#else
  #define Suffix ""
#endif
#define Root ".." + "\.."
#define SourceDir Root + "\build\pyinstaller-" + Flavour + "\dist\cnn-desktop"

[Setup]
; One AppId for both flavours: installing one replaces the other.
AppId={{2CF9876B-6779-4985-AB26-76EDD65E8457}
AppName=cnn-desktop
AppVersion={#Version}
AppVerName=cnn-desktop {#Version}{#Suffix}
AppPublisher=cnn-desktop developers
DefaultDirName={autopf}\cnn-desktop
DefaultGroupName=cnn-desktop
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
ChangesAssociations=yes
OutputDir={#Root}\dist
OutputBaseFilename=cnn-desktop{#Suffix}-{#Version}-windows-x64-setup
SetupIconFile={#Root}\resources\icons\cnn-desktop.ico
WizardImageFile={#Root}\resources\installer\wizard.bmp
WizardSmallImageFile={#Root}\resources\installer\wizard-small.bmp
UninstallDisplayIcon={app}\cnn-desktop.exe
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; Flags: unchecked

[Files]
Source: "{#SourceDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\cnn-desktop"; Filename: "{app}\cnn-desktop.exe"
Name: "{autodesktop}\cnn-desktop"; Filename: "{app}\cnn-desktop.exe"; Tasks: desktopicon

[Registry]
; Generated from the image types the app reads (packaging/image_types.py inno).
#include Root + "\build\windows-associations.iss"

[Run]
Filename: "{app}\cnn-desktop.exe"; Description: "{cm:LaunchProgram,cnn-desktop}"; Flags: nowait postinstall skipifsilent
